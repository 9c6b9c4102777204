"""The network in PyTorch: the test oracle and the benchmarks' baseline.

The official implementation is not part of this project, so this module builds
the same network in PyTorch (the structure of docs/network.md, "Network"),
with the official checkpoint's module names, so that an official state dict
loads into it strictly (``Net().load_state_dict(sd, strict=True)``). It is the
oracle of the gradient tests (``tests/nn/test_model.py``) and the baseline that
``benchmarks/pytorch_baseline.py`` times (its ``--check`` shows that it gives
the reference outputs). NCHW, like PyTorch. ``with_tlsc(net)`` is the official
TLSC network (its ``local_arch``): every global pool replaced as it replaces them.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def conv(cin, cout, k):
  return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)


class CALayer(nn.Module):

  def __init__(self, c, r):
    super().__init__()
    self.avg_pool = nn.AdaptiveAvgPool2d(1)
    self.conv_du = nn.Sequential(conv(c, c // r, 1), nn.ReLU(), conv(c // r, c, 1), nn.Sigmoid())

  def forward(self, x):
    return x * self.conv_du(self.avg_pool(x))


class CAB(nn.Module):

  def __init__(self, c, r, act):
    super().__init__()
    self.CA = CALayer(c, r)
    self.body = nn.Sequential(conv(c, c, 3), act, conv(c, c, 3))

  def forward(self, x):
    return self.CA(self.body(x)) + x


class SAM(nn.Module):

  def __init__(self, c):
    super().__init__()
    self.conv1, self.conv2, self.conv3 = conv(c, c, 1), conv(c, 3, 1), conv(3, c, 1)

  def forward(self, x, x_img):
    img = self.conv2(x) + x_img
    return self.conv1(x) * torch.sigmoid(self.conv3(img)) + x, img


class DownSample(nn.Module):

  def __init__(self, c, s):
    super().__init__()
    self.down = nn.Sequential(nn.Upsample(scale_factor=0.5, mode='bilinear', align_corners=False),
                              conv(c, c + s, 1))

  def forward(self, x):
    return self.down(x)


class UpSample(nn.Module):

  def __init__(self, c, s):
    super().__init__()
    self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False),
                            conv(c + s, c, 1))

  def forward(self, x):
    return self.up(x)


class Encoder(nn.Module):

  def __init__(self, c, s, r, act, csff):
    super().__init__()
    w = (c, c + s, c + 2 * s)
    for i in range(3):
      setattr(self, f'encoder_level{i + 1}', nn.Sequential(*[CAB(w[i], r, act) for _ in range(2)]))
    self.down12, self.down23 = DownSample(c, s), DownSample(c + s, s)
    if csff:
      for kind in ('enc', 'dec'):
        for i in range(3):
          setattr(self, f'csff_{kind}{i + 1}', conv(w[i], w[i], 1))

  def forward(self, x, enc=None, dec=None):
    outs = []
    for i, d in enumerate((self.down12, self.down23, None)):
      x = getattr(self, f'encoder_level{i + 1}')(x)
      if enc is not None:
        x = x + getattr(self, f'csff_enc{i + 1}')(enc[i]) + getattr(self, f'csff_dec{i + 1}')(dec[i])
      outs.append(x)
      if d is not None:
        x = d(x)
    return outs


class Decoder(nn.Module):

  def __init__(self, c, s, r, act):
    super().__init__()
    w = (c, c + s, c + 2 * s)
    for i in range(3):
      setattr(self, f'decoder_level{i + 1}', nn.Sequential(*[CAB(w[i], r, act) for _ in range(2)]))
    self.skip_attn1, self.skip_attn2 = CAB(c, r, act), CAB(c + s, r, act)
    self.up21, self.up32 = UpSample(c, s), UpSample(c + s, s)

  def forward(self, outs):
    enc1, enc2, enc3 = outs
    dec3 = self.decoder_level3(enc3)
    dec2 = self.decoder_level2(self.up32(dec3) + self.skip_attn2(enc2))
    dec1 = self.decoder_level1(self.up21(dec2) + self.skip_attn1(enc1))
    return [dec1, dec2, dec3]


class ORB(nn.Module):

  def __init__(self, c, r, act, n):
    super().__init__()
    self.body = nn.Sequential(*[CAB(c, r, act) for _ in range(n)], conv(c, c, 3))

  def forward(self, x):
    return self.body(x) + x


class ORSNet(nn.Module):

  def __init__(self, c, so, s, r, act, n):
    super().__init__()
    co = c + so
    self.orb1, self.orb2, self.orb3 = ORB(co, r, act, n), ORB(co, r, act, n), ORB(co, r, act, n)
    self.up_enc1, self.up_dec1 = UpSample(c, s), UpSample(c, s)
    self.up_enc2 = nn.Sequential(UpSample(c + s, s), UpSample(c, s))
    self.up_dec2 = nn.Sequential(UpSample(c + s, s), UpSample(c, s))
    for kind in ('enc', 'dec'):
      for i in range(3):
        setattr(self, f'conv_{kind}{i + 1}', conv(c, co, 1))

  def forward(self, x, enc, dec):
    x = self.orb1(x) + self.conv_enc1(enc[0]) + self.conv_dec1(dec[0])
    x = self.orb2(x) + self.conv_enc2(self.up_enc1(enc[1])) + self.conv_dec2(self.up_dec1(dec[1]))
    x = self.orb3(x) + self.conv_enc3(self.up_enc2(enc[2])) + self.conv_dec3(self.up_dec2(dec[2]))
    return x


class MSCAM(nn.Module):

  def __init__(self, c, inner):
    super().__init__()
    self.local_att = nn.Sequential(conv(c, inner, 1), nn.ReLU(), conv(inner, c, 1))
    self.global_att = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(c, inner, 1), nn.ReLU(),
                                    conv(inner, c, 1))

  def forward(self, x):
    return x * torch.sigmoid(self.local_att(x) + self.global_att(x))


class RMSCAB(nn.Module):

  def __init__(self, c, inner):
    super().__init__()
    self.body = nn.Sequential(conv(c, c, 3), nn.ReLU(), conv(c, c, 3), MSCAM(c, inner))

  def forward(self, x):
    return self.body(x) + x


class ResidualGroup(nn.Module):

  def __init__(self, c, inner, n):
    super().__init__()
    self.body = nn.Sequential(*[RMSCAB(c, inner) for _ in range(n)], conv(c, c, 3))

  def forward(self, x):
    return self.body(x) + x


class Net(nn.Module):

  def __init__(self, c=96, s=48, so=32, r=4, num_cab=8, sr=64, groups=17, blocks=10):
    super().__init__()
    act = nn.PReLU()
    for i in (1, 2, 3):
      setattr(self, f'shallow_feat{i}', nn.Sequential(conv(3, c, 3), CAB(c, r, act)))
    self.stage1_encoder, self.stage1_decoder = Encoder(c, s, r, act, False), Decoder(c, s, r, act)
    self.stage2_encoder, self.stage2_decoder = Encoder(c, s, r, act, True), Decoder(c, s, r, act)
    self.stage3_orsnet = ORSNet(c, so, s, r, act, num_cab)
    self.sam12, self.sam23 = SAM(c), SAM(c)
    self.concat12, self.concat23 = conv(2 * c, c, 3), conv(2 * c, c + so, 3)
    self.tail = conv(c + so, 3, 3)
    self.SRNet_sr_cab = CAB(c + so, r, act)
    self.SRNet_before_rec = nn.Sequential(conv(c + so, sr, 3), act)
    self.SRNet_HRconv = conv(sr, sr, 3)
    self.groups = groups
    for g in range(groups):
      setattr(self, f'SRNet_reconstructor{g + 1}', ResidualGroup(sr, sr // 8, blocks))
    self.SRNet_upscale = nn.Sequential(conv(sr, sr * 16, 1), nn.PixelShuffle(4), conv(sr, 3, 3))

  def forward(self, x3):
    h, w = x3.shape[2] // 2, x3.shape[3] // 2
    x2 = [x3[:, :, :h], x3[:, :, h:]]
    feat1, res1, sam, img1 = [], [], [], []
    for half in x2:
      quads = [self.stage1_encoder(self.shallow_feat1(q)) for q in (half[..., :w], half[..., w:])]
      feat = [torch.cat(lr, 3) for lr in zip(*quads)]
      res = self.stage1_decoder(feat)
      f, img = self.sam12(res[0], half)
      feat1.append(feat), res1.append(res), sam.append(f), img1.append(img)
    feat2 = []
    for half, f, feat, res in zip(x2, sam, feat1, res1):
      x = self.concat12(torch.cat([self.shallow_feat2(half), f], 1))
      feat2.append(self.stage2_encoder(x, feat, res))
    feat2 = [torch.cat(tb, 2) for tb in zip(*feat2)]
    res2 = self.stage2_decoder(feat2)
    f3, img2 = self.sam23(res2[0], x3)
    x = self.concat23(torch.cat([self.shallow_feat3(x3), f3], 1))
    feat3 = self.stage3_orsnet(x, feat2, res2) + x
    y = self.SRNet_before_rec(self.SRNet_sr_cab(feat3))
    res = y
    for g in range(self.groups):
      res = getattr(self, f'SRNet_reconstructor{g + 1}')(res)
    y = self.SRNet_upscale(F.leaky_relu(self.SRNet_HRconv(res + y), 0.1))
    return [self.tail(feat3), img2, torch.cat(img1, 2)], y


class LocalAvgPool(nn.Module):
  """TLSC's local mean in the official form: cumulative sums, replicate-padded.

  The window is fixed by the first call, made at the training size: that feature size
  × ``base_size // train_size``. Later calls clamp it to the feature; a window that
  covers the whole feature is the global pool.
  """

  def __init__(self, base_size, train_size):
    super().__init__()
    self.base_size, self.train_size, self.kernel_size = base_size, train_size, None

  def forward(self, x):
    h, w = x.shape[2:]
    if self.kernel_size is None:
      self.kernel_size = [h * self.base_size[0] // self.train_size[0],
                          w * self.base_size[1] // self.train_size[1]]
    if self.kernel_size[0] >= h and self.kernel_size[1] >= w:
      return F.adaptive_avg_pool2d(x, 1)
    k1, k2 = min(h, self.kernel_size[0]), min(w, self.kernel_size[1])
    s = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
    out = (s[:, :, k1:, k2:] + s[:, :, :-k1, :-k2] - s[:, :, :-k1, k2:]
           - s[:, :, k1:, :-k2]) / (k1 * k2)
    oh, ow = out.shape[2:]
    return F.pad(out, ((w - ow) // 2, (w - ow + 1) // 2, (h - oh) // 2, (h - oh + 1) // 2),
                 mode='replicate')


def with_tlsc(net: Net, base_size=(96, 96), train_size=(64, 64)) -> Net:
  """``net`` with each ``nn.AdaptiveAvgPool2d`` replaced by a ``LocalAvgPool``, whose windows
  a forward pass at ``train_size`` fixes (as the official ``local_arch`` converts a model)."""
  for module in list(net.modules()):
    for name, child in module.named_children():
      if isinstance(child, nn.AdaptiveAvgPool2d):
        setattr(module, name, LocalAvgPool(base_size, train_size))
  with torch.no_grad():
    net(torch.zeros(1, 3, *train_size))
  return net


# -- the official losses (docs/network.md, "Losses"), for the benchmarks' training step ------

_K = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05])
_GAUSSIAN = torch.outer(_K, _K)
_SOBEL_X = torch.tensor([[1., 0, -1], [2, 0, -2], [1, 0, -1]])
_SOBEL_Y = _SOBEL_X.t().contiguous()


def _depthwise(x, kernel, padding=0):
  c = x.shape[1]
  w = kernel.to(x.device, x.dtype)[None, None].expand(c, 1, *kernel.shape)
  return F.conv2d(x, w, padding=padding, groups=c)


def _gaussian(x):
  return _depthwise(F.pad(x, (2, 2, 2, 2), mode='replicate'), _GAUSSIAN)


def _laplacian(x):
  filtered = _gaussian(x)
  down = torch.zeros_like(filtered)
  down[:, :, ::2, ::2] = filtered[:, :, ::2, ::2] * 4
  return x - _gaussian(down)


def _charbonnier(x, y, eps=1e-3):
  return torch.mean(torch.sqrt((x - y) ** 2 + eps * eps))


def _stage_loss(image, sharp_lr):
  return _charbonnier(image, sharp_lr) + 0.05 * _charbonnier(_laplacian(image), _laplacian(sharp_lr))


def joint_loss(stage_images, sr, sharp_lr, sharp_hr):
  """Phase 3: L1 + 0.1·Gradient on sr, + 0.5·(Charbonnier + 0.05·Edge) on stages 2 and 1."""
  d = sr - sharp_hr
  gradient = (_depthwise(d, _SOBEL_X, 1).abs().mean() + _depthwise(d, _SOBEL_Y, 1).abs().mean())
  _, stage2, stage1 = stage_images
  return (d.abs().mean() + 0.1 * gradient
          + 0.5 * (_stage_loss(stage2, sharp_lr) + _stage_loss(stage1, sharp_lr)))

"""The joint deblurring and ×4 super-resolution network, in Flax NNX.

Module and attribute names follow the official PyTorch implementation and its
checkpoint keys (``shallow_feat1``, ``stage1_encoder``, ``CAB``, ``SAM``,
``ORSNet``, ``RMSCAB``, ``MSCAM``, ``SRNet_reconstructor``...), so that
``jdsr.checkpoints.pth`` maps one to the other mechanically. Repeated blocks are held
as one stacked module (created with ``nnx.vmap``) and applied with
``nnx.scan``: ``stage1_encoder.encoder_level1`` holds the two CABs that the
checkpoint stores as ``encoder_level1.0`` and ``encoder_level1.1``.

Two things are passed down every call rather than stored in the blocks:

* ``act``: the ONE PReLU that the reference shares between every CAB of the
  deblurring module and the transformation module (a single parameter, owned
  by the top-level model as ``act``);
* ``pool``: the global average pool of the channel-attention layers, or its
  TLSC replacement at test time (see ``jdsr.nn.layers.TLSC``).

Everything is NHWC, float32; traced inside ``jdsr.nn.layout.channels_first()``,
the same network is one flat NCHW program (for ONNX: ``jdsr.checkpoints.onnx``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from jdsr import config as config_lib
from jdsr.nn import layers, layout, winograd
from jdsr.nn.layers import Act, Array, Pool

# ``conv(in_features, out_features, kernel_size, rngs=...)``: ``layers.conv`` with the
# model's ``conv_impl`` bound (one ``functools.partial``, made by ``JDSR`` and handed down).
Conv = Callable[..., nnx.Conv]


def stacked(n: int, make: Callable[[nnx.Rngs], nnx.Module], rngs: nnx.Rngs) -> nnx.Module:
  """``n`` independent copies of a block, as one module with stacked parameters."""

  @nnx.split_rngs(splits=n)
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def create(rngs: nnx.Rngs) -> nnx.Module:
    return make(rngs)

  return create(rngs)


_REMAT = contextvars.ContextVar('remat', default=False)


@contextlib.contextmanager
def remat_blocks(enabled: bool = True) -> Iterator[None]:
  """While tracing inside this context, stacked blocks are rematerialised.

  Each block of a ``run_stacked`` scan then keeps its input and its 3×3
  convolutions' outputs (the values named ``winograd.CONV_OUTPUT``) for the
  backward pass, and recomputes the rest: the element-wise work, the
  attention layers, the 1×1 convolutions and the Winograd input transforms,
  but not the 3×3 convolutions, which cost most. It changes no result.
  """
  token = _REMAT.set(enabled)
  try:
    yield
  finally:
    _REMAT.reset(token)


REMAT_POLICY = jax.checkpoint_policies.save_only_these_names(winograd.CONV_OUTPUT)


def run_stacked(blocks: nnx.Module, x: Array, *args, remat: bool = True) -> Array:
  """Apply stacked blocks one after the other (``blocks[i](x, *args)``) with a scan.

  ``args`` (the shared activation, the pooling function) are closed over: they
  are the same for every block. See ``remat_blocks``; ``remat=False`` for a
  scan whose blocks hold scans of their own, which are rematerialised
  instead (rematerialising both would run the inner blocks forward once more).
  """

  def body(x, block):
    return block(x, *args)

  if layout.is_channels_first():  # unrolled: one flat graph (see jdsr.nn.layout)
    graphdef, state = nnx.split(blocks)
    for i in range(jax.tree.leaves(state)[0].shape[0]):
      x = body(x, nnx.merge(graphdef, jax.tree.map(lambda v: v[i], state)))
    return x
  if remat and _REMAT.get():
    body = nnx.remat(body, policy=REMAT_POLICY)
  return nnx.scan(body, in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)(x, blocks)


# ----------------------------------------------------------------------------
# Deblurring module (MPRNet)
# ----------------------------------------------------------------------------


class CALayer(nnx.Module):
  """Channel attention: pool → conv 1 (c→c/r) → ReLU → conv 1 → sigmoid → scale."""

  def __init__(self, conv: Conv, c: int, reduction: int, *, rngs: nnx.Rngs):
    self.conv_du1 = conv(c, c // reduction, 1, rngs=rngs)
    self.conv_du2 = conv(c // reduction, c, 1, rngs=rngs)

  @jax.named_scope(layers.ATTENTION_SCOPE)
  def __call__(self, x: Array, pool: Pool) -> Array:
    y = self.conv_du2(jax.nn.relu(layers.pool_conv(pool, self.conv_du1, x)))
    return x * jax.nn.sigmoid(y)


class CAB(nnx.Module):
  """Channel attention block: conv 3 → act → conv 3 → CA → + input."""

  def __init__(self, conv: Conv, c: int, reduction: int, *, rngs: nnx.Rngs):
    self.CA = CALayer(conv, c, reduction, rngs=rngs)
    self.body1 = conv(c, c, 3, rngs=rngs)
    self.body2 = conv(c, c, 3, rngs=rngs)

  def __call__(self, x: Array, act: Act, pool: Pool) -> Array:
    return self.CA(self.body2(act(self.body1(x))), pool) + x


class SAM(nnx.Module):
  """Supervised attention module (all conv 1)."""

  def __init__(self, conv: Conv, c: int, *, rngs: nnx.Rngs):
    self.conv1 = conv(c, c, 1, rngs=rngs)
    self.conv2 = conv(c, 3, 1, rngs=rngs)
    self.conv3 = conv(3, c, 1, rngs=rngs)

  def __call__(self, x: Array, x_img: Array) -> tuple[Array, Array]:
    img = self.conv2(x) + x_img
    return self.conv1(x) * jax.nn.sigmoid(self.conv3(img)) + x, img


class DownSample(nnx.Module):
  """Bilinear ×0.5 → conv 1 (c → c + s)."""

  def __init__(self, conv: Conv, c: int, s: int, *, rngs: nnx.Rngs):
    self.conv = conv(c, c + s, 1, rngs=rngs)

  def __call__(self, x: Array) -> Array:
    return self.conv(layers.downsample2(x))


class UpSample(nnx.Module):
  """Bilinear ×2 → conv 1 (c + s → c).

  Both are linear and act on different axes, so they commute: traced for ONNX
  (``layout.channels_first()``) the conv goes first, on a quarter of the pixels,
  and the upsampling moves c channels instead of c + s (the same numbers to float
  rounding, as ``layers.pool_conv`` for TLSC).
  """

  def __init__(self, conv: Conv, c: int, s: int, *, rngs: nnx.Rngs):
    self.conv = conv(c + s, c, 1, rngs=rngs)

  def __call__(self, x: Array) -> Array:
    if layout.is_channels_first():
      return layers.upsample2(self.conv(x))
    return self.conv(layers.upsample2(x))


class SkipUpSample(UpSample):
  """UpSample, then add the skip input."""

  def __call__(self, x: Array, y: Array) -> Array:
    return super().__call__(x) + y


class ShallowFeat(nnx.Module):
  """conv 3 (3 → c) → CAB."""

  def __init__(self, conv: Conv, c: int, reduction: int, *, rngs: nnx.Rngs):
    self.conv = conv(3, c, 3, rngs=rngs)
    self.cab = CAB(conv, c, reduction, rngs=rngs)

  def __call__(self, x: Array, act: Act, pool: Pool) -> Array:
    return self.cab(self.conv(x), act, pool)


def _cabs(conv: Conv, n: int, c: int, reduction: int, rngs: nnx.Rngs) -> nnx.Module:
  return stacked(n, lambda r: CAB(conv, c, reduction, rngs=r), rngs)


class Encoder(nnx.Module):
  """Three levels of CABs with two DownSamples; optional cross-stage fusion."""

  def __init__(self, conv: Conv, c: int, s: int, reduction: int, n_cab: int, csff: bool, *,
               rngs: nnx.Rngs):
    widths = (c, c + s, c + 2 * s)
    self.encoder_level1 = _cabs(conv, n_cab, widths[0], reduction, rngs)
    self.encoder_level2 = _cabs(conv, n_cab, widths[1], reduction, rngs)
    self.encoder_level3 = _cabs(conv, n_cab, widths[2], reduction, rngs)
    self.down12 = DownSample(conv, widths[0], s, rngs=rngs)
    self.down23 = DownSample(conv, widths[1], s, rngs=rngs)
    self.csff = csff
    if csff:
      for i, w in enumerate(widths, 1):
        setattr(self, f'csff_enc{i}', conv(w, w, 1, rngs=rngs))
        setattr(self, f'csff_dec{i}', conv(w, w, 1, rngs=rngs))

  def __call__(self, x: Array, act: Act, pool: Pool, encoder_outs: Sequence[Array] | None = None,
               decoder_outs: Sequence[Array] | None = None) -> list[Array]:
    outs = []
    levels = (self.encoder_level1, self.encoder_level2, self.encoder_level3)
    downs = (self.down12, self.down23, None)
    for i, (level, down) in enumerate(zip(levels, downs)):
      x = run_stacked(level, x, act, pool)
      if encoder_outs is not None:
        x = (x + getattr(self, f'csff_enc{i + 1}')(encoder_outs[i])
             + getattr(self, f'csff_dec{i + 1}')(decoder_outs[i]))
      outs.append(x)
      if down is not None:
        x = down(x)
    return outs


class Decoder(nnx.Module):
  """Level 3 → SkipUpSample → level 2 → SkipUpSample → level 1."""

  def __init__(self, conv: Conv, c: int, s: int, reduction: int, n_cab: int, *, rngs: nnx.Rngs):
    self.decoder_level1 = _cabs(conv, n_cab, c, reduction, rngs)
    self.decoder_level2 = _cabs(conv, n_cab, c + s, reduction, rngs)
    self.decoder_level3 = _cabs(conv, n_cab, c + 2 * s, reduction, rngs)
    self.skip_attn1 = CAB(conv, c, reduction, rngs=rngs)
    self.skip_attn2 = CAB(conv, c + s, reduction, rngs=rngs)
    self.up21 = SkipUpSample(conv, c, s, rngs=rngs)
    self.up32 = SkipUpSample(conv, c + s, s, rngs=rngs)

  def __call__(self, outs: Sequence[Array], act: Act, pool: Pool) -> list[Array]:
    enc1, enc2, enc3 = outs
    dec3 = run_stacked(self.decoder_level3, enc3, act, pool)
    x = self.up32(dec3, self.skip_attn2(enc2, act, pool))
    dec2 = run_stacked(self.decoder_level2, x, act, pool)
    x = self.up21(dec2, self.skip_attn1(enc1, act, pool))
    dec1 = run_stacked(self.decoder_level1, x, act, pool)
    return [dec1, dec2, dec3]


class ORB(nnx.Module):
  """Original-resolution block: ``num_cab`` CABs → conv 3, plus the input."""

  def __init__(self, conv: Conv, c: int, reduction: int, num_cab: int, *, rngs: nnx.Rngs):
    self.body = _cabs(conv, num_cab, c, reduction, rngs)
    self.conv = conv(c, c, 3, rngs=rngs)

  def __call__(self, x: Array, act: Act, pool: Pool) -> Array:
    return self.conv(run_stacked(self.body, x, act, pool)) + x


class ORSNet(nnx.Module):
  """Stage 3: three ORBs, each followed by the stage-2 features at full size."""

  def __init__(self, conv: Conv, c: int, s_ors: int, s_unet: int, reduction: int, num_cab: int, *, rngs: nnx.Rngs):
    co = c + s_ors
    for i in (1, 2, 3):
      setattr(self, f'orb{i}', ORB(conv, co, reduction, num_cab, rngs=rngs))
    self.up_enc1 = UpSample(conv, c, s_unet, rngs=rngs)
    self.up_dec1 = UpSample(conv, c, s_unet, rngs=rngs)
    self.up_enc2 = nnx.List([UpSample(conv, c + s_unet, s_unet, rngs=rngs),
                             UpSample(conv, c, s_unet, rngs=rngs)])
    self.up_dec2 = nnx.List([UpSample(conv, c + s_unet, s_unet, rngs=rngs),
                             UpSample(conv, c, s_unet, rngs=rngs)])
    for i in (1, 2, 3):
      setattr(self, f'conv_enc{i}', conv(c, co, 1, rngs=rngs))
    for i in (1, 2, 3):
      setattr(self, f'conv_dec{i}', conv(c, co, 1, rngs=rngs))

  def __call__(self, x: Array, act: Act, pool: Pool, encoder_outs: Sequence[Array],
               decoder_outs: Sequence[Array]) -> Array:
    enc1, enc2, enc3 = encoder_outs
    dec1, dec2, dec3 = decoder_outs
    x = self.orb1(x, act, pool)
    x = x + self.conv_enc1(enc1) + self.conv_dec1(dec1)
    x = self.orb2(x, act, pool)
    x = x + self.conv_enc2(self.up_enc1(enc2)) + self.conv_dec2(self.up_dec1(dec2))
    x = self.orb3(x, act, pool)
    up_enc, up_dec = enc3, dec3
    for ue, ud in zip(self.up_enc2, self.up_dec2):
      up_enc, up_dec = ue(up_enc), ud(up_dec)
    return x + self.conv_enc3(up_enc) + self.conv_dec3(up_dec)


# ----------------------------------------------------------------------------
# Super-resolution module
# ----------------------------------------------------------------------------


class MSCAM(nnx.Module):
  """Multi-scale channel attention: sigmoid(local(x) + global(pool(x))) · x."""

  def __init__(self, conv: Conv, c: int, inner: int, *, rngs: nnx.Rngs):
    self.local_att1 = conv(c, inner, 1, rngs=rngs)
    self.local_att2 = conv(inner, c, 1, rngs=rngs)
    self.global_att1 = conv(c, inner, 1, rngs=rngs)
    self.global_att2 = conv(inner, c, 1, rngs=rngs)

  @jax.named_scope(layers.ATTENTION_SCOPE)
  def __call__(self, x: Array, pool: Pool) -> Array:
    local = self.local_att2(jax.nn.relu(self.local_att1(x)))
    glob = self.global_att2(jax.nn.relu(layers.pool_conv(pool, self.global_att1, x)))
    return x * jax.nn.sigmoid(local + glob)


class RMSCAB(nnx.Module):
  """Residual multi-scale channel attention block: conv 3 → ReLU → conv 3 → MS-CAM → + input."""

  def __init__(self, conv: Conv, c: int, inner: int, *, rngs: nnx.Rngs):
    self.body1 = conv(c, c, 3, rngs=rngs)
    self.body2 = conv(c, c, 3, rngs=rngs)
    self.MSCAM = MSCAM(conv, c, inner, rngs=rngs)

  def __call__(self, x: Array, pool: Pool) -> Array:
    return self.MSCAM(self.body2(jax.nn.relu(self.body1(x))), pool) + x


class ResidualGroup(nnx.Module):
  """``n_blocks`` RMS-CABs → conv 3, plus the group's input."""

  def __init__(self, conv: Conv, c: int, inner: int, n_blocks: int, *, rngs: nnx.Rngs):
    self.body = stacked(n_blocks, lambda r: RMSCAB(conv, c, inner, rngs=r), rngs)
    self.conv = conv(c, c, 3, rngs=rngs)

  def __call__(self, x: Array, pool: Pool) -> Array:
    return self.conv(run_stacked(self.body, x, pool)) + x


class Upscale(nnx.Module):
  """conv 1 (c → c·r²) → pixel shuffle ×r → conv 3 (c → 3).

  The c·r² channels at low resolution are the largest tensors of the network
  (230 MB at a 176×320 input), so this runs in horizontal bands of about
  ``band_bytes``, each with one low-resolution row of context above and below
  (zero rows at the image border, which is the conv's zero padding): the same
  numbers, a fraction of the memory. With symbolic shapes (``jax.export``) the
  bands are 8 rows (inputs are multiples of 8), as many as the height needs.
  """

  band_bytes = 64 << 20

  def __init__(self, conv: Conv, c: int, scale: int, *, rngs: nnx.Rngs):
    self.scale = scale
    self.conv1 = conv(c, c * scale * scale, 1, rngs=rngs)
    self.conv2 = conv(c, 3, 3, rngs=rngs)

  def __call__(self, x: Array) -> Array:
    r = self.scale
    if layout.is_channels_first():  # one piece: one flat graph (see jdsr.nn.layout)
      return self.conv2(layers.pixel_shuffle(self.conv1(x), r))
    n, h, w, c = x.shape
    if all(isinstance(d, int) for d in x.shape):
      row_bytes = n * w * c * r * r * x.dtype.itemsize
      rows = max([b for b in range(1, h + 1) if h % b == 0 and b * row_bytes <= self.band_bytes],
                 default=1)
    else:
      rows = 8
    # (bands, n, rows + 2, w, c): each band with the row above and below it (zeros at the border).
    bands = x.reshape(n, h // rows, rows, w, c)
    zero = jnp.zeros_like(bands[:, :1, :1])
    above = jnp.concatenate([zero, bands[:, :-1, -1:]], axis=1)
    below = jnp.concatenate([bands[:, 1:, :1], zero], axis=1)
    windows = jnp.moveaxis(jnp.concatenate([above, bands, below], axis=2), 1, 0)

    def band(xw):
      y = self.conv2(layers.pixel_shuffle(self.conv1(xw), r))
      return y[:, r:-r]

    y = jax.lax.map(band, windows)  # (bands, n, rows·r, w·r, 3)
    return y.transpose(1, 0, 2, 3, 4).reshape(n, h * r, w * r, y.shape[-1])


# ----------------------------------------------------------------------------
# The whole network
# ----------------------------------------------------------------------------


class JDSR(nnx.Module):
  """Joint motion deblurring and ×4 super-resolution.

  ``model(x)`` takes float32 (N, H, W, 3) images in [0, 1] with H and W
  multiples of 8 and returns ``(stage_images, sr)``: the deblurring module's
  three stage images ``[stage3, stage2, stage1]`` (each (N, H, W, 3)) and the
  super-resolved image (N, 4H, 4W, 3). Inside ``layout.channels_first()``, all
  of them are NCHW instead.
  """

  def __init__(self, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    c, s, s_ors = config.n_feat, config.scale_unetfeats, config.scale_orsnetfeats
    r = config.reduction
    dtype = config.get('dtype', 'float32')
    if dtype not in config_lib.DTYPES:
      raise ValueError(f'model dtype must be one of {config_lib.DTYPES}, got {dtype!r}')
    conv = functools.partial(layers.conv, impl=config.conv_impl, dtype=dtype)
    enc_cabs = config.get('num_unet_cab', 2)
    self.config = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
    self.act = nnx.PReLU(0.25)
    # Deblurring module.
    for i in (1, 2, 3):
      setattr(self, f'shallow_feat{i}', ShallowFeat(conv, c, r, rngs=rngs))
    self.stage1_encoder = Encoder(conv, c, s, r, enc_cabs, csff=False, rngs=rngs)
    self.stage1_decoder = Decoder(conv, c, s, r, enc_cabs, rngs=rngs)
    self.stage2_encoder = Encoder(conv, c, s, r, enc_cabs, csff=True, rngs=rngs)
    self.stage2_decoder = Decoder(conv, c, s, r, enc_cabs, rngs=rngs)
    self.stage3_orsnet = ORSNet(conv, c, s_ors, s, r, config.num_cab, rngs=rngs)
    self.sam12 = SAM(conv, c, rngs=rngs)
    self.sam23 = SAM(conv, c, rngs=rngs)
    self.concat12 = conv(2 * c, c, 3, rngs=rngs)
    self.concat23 = conv(2 * c, c + s_ors, 3, rngs=rngs)
    self.tail = conv(c + s_ors, 3, 3, rngs=rngs)
    # Feature transformation and super-resolution module.
    co, sr = c + s_ors, config.sr_feat
    self.SRNet_sr_cab = CAB(conv, co, r, rngs=rngs)
    self.SRNet_before_rec = conv(co, sr, 3, rngs=rngs)
    self.SRNet_HRconv = conv(sr, sr, 3, rngs=rngs)
    self.n_resgroups = config.n_resgroups
    if config.n_resgroups:
      self.SRNet_reconstructor = stacked(
          config.n_resgroups,
          lambda rg: ResidualGroup(conv, sr, sr // config.mscam_reduction, config.n_resblocks, rngs=rg), rngs)
    self.SRNet_upscale = Upscale(conv, sr, config.scale, rngs=rngs)

  def deblur(self, x: Array, *, tlsc: layers.TLSC | None = None) -> tuple[list[Array], Array]:
    """The deblurring module alone: ``([stage3, stage2, stage1], stage-3 features)``."""
    _check_input(x)
    return self._deblur(x, self.act_fn(), _pool(x, tlsc))

  def __call__(self, x: Array, *, tlsc: layers.TLSC | None = None) -> tuple[list[Array], Array]:
    _check_input(x)
    act, pool = self.act_fn(), _pool(x, tlsc)
    images, feat = self._deblur(x, act, pool)
    return images, self.super_resolve(feat, act, pool)

  def act_fn(self) -> Act:
    """The shared PReLU as a function (its parameter read once)."""
    return layers.prelu(self.act.negative_slope[...])

  def _deblur(self, x3_img: Array, act: Act, pool: Pool) -> tuple[list[Array], Array]:
    H, W = layout.spatial_axes()
    C = layout.channel_axis()
    x2_img = _halves(x3_img, H)  # top, bottom
    x1_img = [_halves(half, W) for half in x2_img]  # left, right of each

    # Stage 1: the four quadrants, encoded separately, decoded per half.
    feat1, res1, sam_feats, stage1_img = [], [], [], []
    for half_img, quads in zip(x2_img, x1_img):
      enc = [self.stage1_encoder(self.shallow_feat1(q, act, pool), act, pool) for q in quads]
      feat = [_join(lr, W) for lr in zip(*enc)]
      res = self.stage1_decoder(feat, act, pool)
      f, img = self.sam12(res[0], half_img)
      feat1.append(feat)
      res1.append(res)
      sam_feats.append(f)
      stage1_img.append(img)
    stage1_img = _join(stage1_img, H)

    # Stage 2: the two halves, with cross-stage fusion, decoded whole.
    feat2 = []
    for half_img, f_sam, feat, res in zip(x2_img, sam_feats, feat1, res1):
      x2 = self.shallow_feat2(half_img, act, pool)
      x2 = self.concat12(jnp.concatenate([x2, f_sam], axis=C))
      feat2.append(self.stage2_encoder(x2, act, pool, feat, res))
    feat2 = [_join(tb, H) for tb in zip(*feat2)]
    res2 = self.stage2_decoder(feat2, act, pool)
    x3_samfeats, stage2_img = self.sam23(res2[0], x3_img)

    # Stage 3: the whole image at full resolution.
    x3 = self.shallow_feat3(x3_img, act, pool)
    x3 = self.concat23(jnp.concatenate([x3, x3_samfeats], axis=C))
    feat3 = self.stage3_orsnet(x3, act, pool, feat2, res2) + x3
    stage3_img = self.tail(feat3)
    return [stage3_img, stage2_img, stage1_img], feat3

  def super_resolve(self, feat: Array, act: Act, pool: Pool) -> Array:
    """Transformation + super-resolution of the stage-3 features."""
    x = act(self.SRNet_before_rec(self.SRNet_sr_cab(feat, act, pool)))
    if self.n_resgroups:
      x = run_stacked(self.SRNet_reconstructor, x, pool, remat=False) + x
    x = jax.nn.leaky_relu(self.SRNet_HRconv(x), 0.1)
    return self.SRNet_upscale(x)


# ----------------------------------------------------------------------------
# Building models
# ----------------------------------------------------------------------------


def _model_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A model config from a model config or an experiment config (one with a ``model`` field)."""
  return config.model if 'model' in config else config


def abstract_model(config: ml_collections.ConfigDict) -> JDSR:
  """The model's structure (``config``: as ``build_model``) without allocating its weights."""
  config = _model_config(config)
  return nnx.eval_shape(lambda: JDSR(config, rngs=nnx.Rngs(0)))


def model_config_of(model: JDSR) -> ml_collections.ConfigDict:
  """The model config a model was built from."""
  return ml_collections.ConfigDict(dict(model.config))


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs | int = 0) -> JDSR:
  """A freshly initialised model.

  ``config`` is a model config (``jdsr.model_config()``) or an experiment
  config with a ``model`` field (``configs/*.py``'s ``get_config()``).

  The convolutions get PyTorch's default initialisation, U(±1/sqrt(fan_in)),
  and the shared PReLU 0.25, as in the official code. The weights are drawn
  with NumPy from one seed: initialising layer by layer with jax.random
  compiles one random-number program per tensor shape (half a minute here),
  and drawing all 34M weights in one program needs several copies of them.
  ``rngs``: an integer seed, or an ``nnx.Rngs`` whose ``params`` stream gives one.
  """
  if isinstance(rngs, nnx.Rngs):
    rngs = int(jax.random.randint(rngs.params(), (), 0, 2**31 - 1))
  rng = np.random.default_rng(rngs)
  model = abstract_model(config)
  flat = []
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    if len(var.shape) >= 4:  # (stack..., kh, kw, in, out) convolution kernel
      bound = 1.0 / math.sqrt(math.prod(var.shape[-4:-1]))
      value = rng.uniform(-bound, bound, var.shape).astype(np.float32)
    else:  # the shared PReLU slope
      value = np.full(var.shape, 0.25, np.float32)
    flat.append((path, var.replace(jnp.asarray(value))))
  nnx.update(model, nnx.from_flat_state(flat))
  return model


def with_compute(model: JDSR, **settings) -> JDSR:
  """``model`` with other compute settings (``conv_impl``, ``dtype``), sharing its weights.

  Returns ``model`` itself when nothing changes.
  """
  unknown = set(settings) - set(config_lib.COMPUTE_FIELDS)
  if unknown:
    raise ValueError(f'{sorted(unknown)} are not compute settings {config_lib.COMPUTE_FIELDS}')
  config = {**model.config, **settings}
  if config == dict(model.config):
    return model
  rebuilt = abstract_model(config_lib.model_config(**config))
  nnx.update(rebuilt, nnx.state(model))
  return rebuilt


# The image's halves and quadrants are split and joined by reshapes, not slices and
# concatenations: the same copies for XLA, and what converts to ONNX with symbolic H and W.


def _halves(x: Array, axis: int) -> list[Array]:
  """The two halves of ``x`` along ``axis`` (of even size)."""
  shape = list(x.shape)
  shape[axis:axis + 1] = [2, x.shape[axis] // 2]
  return [jax.lax.index_in_dim(x.reshape(shape), i, axis, keepdims=False) for i in (0, 1)]


def _join(halves: Sequence[Array], axis: int) -> Array:
  """The inverse of ``_halves``: two arrays of one shape, one after the other along ``axis``."""
  shape = list(halves[0].shape)
  shape[axis] = 2 * shape[axis]
  return jnp.stack(halves, axis=axis).reshape(shape)


def _pool(x: Array, tlsc: layers.TLSC | None) -> Pool:
  return layers.global_pool if tlsc is None else tlsc.pool(layout.spatial_shape(x))


def _check_input(x: Array) -> None:
  if x.ndim != 4 or x.shape[layout.channel_axis()] != 3:
    expected = '(N, 3, H, W)' if layout.is_channels_first() else '(N, H, W, 3)'
    raise ValueError(f'expected images of shape {expected}, got {tuple(x.shape)}')
  h, w = layout.spatial_shape(x)
  if h % 8 or w % 8:
    raise ValueError(
        f'image height and width must be multiples of 8, got {h}x{w} (H x W); pad the '
        f'input, for example to {-(-h // 8) * 8}x{-(-w // 8) * 8}, and crop the output, '
        'or use jdsr.inference.restore, which does this for you')

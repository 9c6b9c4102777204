"""The whole network against the official implementation's numbers."""

import functools

import numpy as np
import pytest

import jax
import jax.numpy as jnp
import jax.extend.core  # noqa: F401 (jax.extend.core.jaxprs_in_params)
from flax import nnx

import jdsr
from jdsr.nn import layers, model as model_lib
from jdsr.checkpoints import pth
from tests import reference

TOL = 1e-4  # tests/data/README.md: a right port agrees well within 1e-4
OUTPUTS = ('stage3_img', 'stage2_img', 'stage1_img')


def _forward(model, x, tlsc=None):
  return jdsr.apply(model, x, tlsc=tlsc)


def _check(golden, images, sr):
  for name, got in zip(OUTPUTS, images):
    np.testing.assert_allclose(got, reference.nchw_to_nhwc(golden[name]), rtol=0, atol=TOL,
                               err_msg=name)
  np.testing.assert_allclose(reference.sr_sample(sr), reference.nchw_to_nhwc(golden['sr']), rtol=0, atol=TOL,
                             err_msg='sr')


def _count(config):
  model = model_lib.abstract_model(config)
  return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_parameter_count_is_the_papers():
  assert _count(jdsr.model_config()) == 34_116_641


def test_ablation_configs():
  from configs import baseline, default, model1
  full = _count(default.get_config().model)
  group = 10 * (2 * 64 * 64 * 9 + 4 * 64 * 8) + 64 * 64 * 9
  assert _count(model1.get_config().model) == full - 5 * group
  assert _count(baseline.get_config().model) == full - 17 * group


def test_golden_forward(golden_model):
  golden = reference.load('golden_forward.npz')
  _check(golden, *_forward(golden_model, reference.nchw_to_nhwc(golden['input'])))


def test_golden_forward_with_tlsc(golden_model):
  golden = reference.load('golden_tlsc.npz')
  x = reference.nchw_to_nhwc(golden['input'])
  images, sr = _forward(golden_model, x, jdsr.TLSC())
  # Without TLSC, sr differs by about 3e-3 at this size (tests/data/README.md): the check
  # below fails unless TLSC is applied as the official implementation applies it.
  _check(golden, images, sr)


@pytest.mark.parametrize('impl', ['xla', 'winograd'])
def test_golden_forward_each_conv_impl(golden_pth, impl):
  if impl == ('winograd' if jax.default_backend() == 'cpu' else 'xla'):  # 'auto' in float32
    pytest.skip(f"'auto' is {impl} here: test_golden_forward checks it")
  model = jdsr.load(golden_pth, jdsr.model_config(conv_impl=impl))
  golden = reference.load('golden_forward.npz')
  _check(golden, *_forward(model, reference.nchw_to_nhwc(golden['input'])))


def test_deblur_alone_gives_the_stage_images():
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  x = jax.random.uniform(jax.random.key(0), (1, 16, 24, 3))
  images, feat = model.deblur(x)  # eager: no compilation
  want, _ = model(x)
  assert feat.shape[:3] == (1, 16, 24)
  for got, expected in zip(images, want, strict=True):
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize('shape, message', [
    ((1, 60, 96, 3), '60x96'),
    ((1, 64, 90, 3), '64x90'),
    ((1, 64, 96, 4), 'shape'),
    ((64, 96, 3), 'shape'),
])
def test_bad_input_is_rejected_clearly(shape, message):
  model = model_lib.abstract_model(jdsr.tiny_model_config())
  with pytest.raises(ValueError, match=message):
    model(jnp.zeros(shape))


@nnx.jit
@nnx.grad
def _grad(model, x):
  images, sr = model(x)
  return sum(jnp.mean(i ** 2) for i in images) + jnp.mean(sr ** 2)


def _zero_gradients(model, x):
  grads = _grad(model, x)
  return {jax.tree_util.keystr(p) for p, g in jax.tree_util.tree_leaves_with_path(grads)
          if not np.any(np.asarray(g))}


@pytest.mark.slow
def test_tiny_model_runs_and_trains_every_part():
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=1)
  x = jax.random.uniform(jax.random.key(0), (2, 16, 24, 3))
  images, sr = nnx.jit(lambda m, x: m(x))(model, x)
  assert [i.shape for i in images] == [(2, 16, 24, 3)] * 3 and sr.shape == (2, 64, 96, 3)
  assert not any('act' in p for p in _zero_gradients(model, x))  # the shared PReLU learns
  # Positive weights and inputs keep every ReLU alive, so that a parameter
  # without gradient can only be one the forward pass does not use (the
  # PReLU then sees no negative input: it is checked above).
  for _, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    var[...] = jnp.abs(var[...]) * 0.5
  unused = _zero_gradients(model, x) - {"['act']['negative_slope'].value"}
  assert not unused, f'parameters that get no gradient: {sorted(unused)}'


@pytest.mark.slow  # a minute: the full suite runs it, `scripts/test.sh --fast` does not
def test_gradients_equal_pytorch_autograd():
  """Training follows the official gradients: every parameter's, against PyTorch autograd.

  The PyTorch network is the benchmarks' baseline (it loads the official
  checkpoint strictly and matches the goldens: the test below), run in
  float64. The loss is a fixed random linear function of all four outputs,
  so each output's backward pass counts. The default convolutions (Winograd
  on CPU) are differentiated, the ones training uses.
  """
  torch = pytest.importorskip('torch')
  from tests import torch_network

  sizes = dict(n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_cab=2, sr_feat=16,
               n_resgroups=2, n_resblocks=2)
  model = jdsr.JDSR(jdsr.model_config(**sizes, mscam_reduction=8), rngs=nnx.Rngs(0))
  net = torch_network.Net(c=8, s=4, so=4, num_cab=2, sr=16, groups=2, blocks=2).double()
  net.load_state_dict({k: torch.from_numpy(v).double()
                       for k, v in pth.params_to_state_dict(model).items()}, strict=True)
  rng = np.random.default_rng(0)
  x = rng.random((2, 16, 24, 3), dtype=np.float32)
  weights = [rng.standard_normal(s).astype(np.float32) for s in [(2, 16, 24, 3)] * 3 + [(2, 64, 96, 3)]]

  def loss(model):
    images, sr = model(jnp.asarray(x))
    return sum(jnp.sum(out * w) for out, w in zip([*images, sr], weights))

  grads = nnx.state(nnx.jit(nnx.grad(loss))(model))
  nnx.update(model, grads)  # the gradients, laid out as the official state dict
  ours = pth.params_to_state_dict(model)
  nchw = lambda a: torch.from_numpy(a).double().permute(0, 3, 1, 2)  # noqa: E731
  images, sr = net(nchw(x))
  sum((out * nchw(w)).sum() for out, w in zip([*images, sr], weights)).backward()
  for name, p in net.named_parameters():
    theirs = p.grad.numpy() if p.grad is not None else np.zeros(p.shape)
    np.testing.assert_allclose(ours[name], theirs, rtol=0, atol=1e-4 * np.abs(theirs).max() + 1e-7,
                               err_msg=name)


def test_torch_network_is_the_official_network():
  """tests.torch_network.Net, the oracle above and the benchmarks' baseline, gives the goldens."""
  torch = pytest.importorskip('torch')
  from tests import torch_network

  net = torch_network.Net().eval()
  net.load_state_dict({k: torch.from_numpy(v) for k, v in reference.golden_state_dict().items()},
                      strict=True)
  golden = reference.load('golden_forward.npz')
  with torch.no_grad():
    images, sr = net(torch.from_numpy(golden['input']))
  for name, got in zip(OUTPUTS, images):
    np.testing.assert_allclose(got.numpy(), golden[name], rtol=0, atol=TOL, err_msg=name)
  np.testing.assert_allclose(sr.numpy()[..., ::reference.SR_STRIDE, ::reference.SR_STRIDE],
                             golden['sr'], rtol=0, atol=TOL, err_msg='sr')



@pytest.mark.slow  # the paper's network twice in PyTorch (the windows, then the goldens): 27 s
def test_torch_network_with_tlsc_is_the_official_tlsc_network():
  """tests.torch_network.with_tlsc, the TLSC benchmarks' baseline, gives the TLSC goldens."""
  torch = pytest.importorskip('torch')
  from tests import torch_network

  net = torch_network.Net().eval()
  net.load_state_dict({k: torch.from_numpy(v) for k, v in reference.golden_state_dict().items()},
                      strict=True)
  net = torch_network.with_tlsc(net)
  assert sum(isinstance(m, torch_network.LocalAvgPool) for m in net.modules()) > 100
  golden = reference.load('golden_tlsc.npz')
  with torch.no_grad():
    images, sr = net(torch.from_numpy(golden['input']))
  for name, got in zip(OUTPUTS, images):
    np.testing.assert_allclose(got.numpy(), golden[name], rtol=0, atol=TOL, err_msg=name)
  np.testing.assert_allclose(sr.numpy()[..., ::reference.SR_STRIDE, ::reference.SR_STRIDE],
                             golden['sr'], rtol=0, atol=TOL, err_msg='sr')


def _primitives(jaxpr) -> list:
  """The equations of a jaxpr and of its sub-jaxprs (scans, remat...), as (name, output shape)."""
  found = []
  for eqn in jaxpr.eqns:
    found.append((eqn.primitive.name, eqn.outvars[0].aval.shape if eqn.outvars else ()))
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      found += _primitives(sub)
  return found


def _winograd_products(jaxpr) -> int:
  """The Winograd matrix products (36 at a time) in a jaxpr."""
  return sum(name == 'dot_general' and shape[:2] == (6, 6) for name, shape in _primitives(jaxpr))


def test_remat_recomputes_no_3x3_convolution_and_changes_no_gradient():
  """Rematerialised blocks keep their 3×3 convolutions' outputs and give the same gradients."""
  conv = functools.partial(layers.conv, impl='winograd')
  blocks = model_lib.stacked(2, lambda r: model_lib.RMSCAB(conv, 16, 4, rngs=r), nnx.Rngs(0))
  graphdef, params = nnx.split(blocks)
  x = jax.random.normal(jax.random.key(0), (1, 8, 12, 16))

  def grad(remat):
    def loss(params, x):
      with model_lib.remat_blocks(remat):
        return jnp.sum(jnp.sin(model_lib.run_stacked(nnx.merge(graphdef, params), x,
                                                      layers.global_pool)))
    return jax.grad(loss, argnums=(0, 1))

  plain, remat = (jax.make_jaxpr(grad(r))(params, x).jaxpr for r in (False, True))
  remat_names = {'remat2', 'checkpoint'}
  assert {n for n, _ in _primitives(remat)} & remat_names
  assert not {n for n, _ in _primitives(plain)} & remat_names
  assert _winograd_products(remat) == _winograd_products(plain) > 0
  for a, b in zip(jax.tree.leaves(grad(False)(params, x)), jax.tree.leaves(grad(True)(params, x))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

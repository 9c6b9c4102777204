"""jdsr.inference.restore: any size, grayscale and alpha, bucketing and tiling."""

import numpy as np
import pytest

import jax.numpy as jnp

import jdsr
from jdsr.inference import forward, restore as restore_lib
from jdsr.io import pixels
from jdsr.inference.restore import Options, restore


def _nearest_x4(model, x, tlsc=None):
  """A stand-in for the network that is exactly local: nearest-neighbour ×4."""
  sr = jnp.repeat(jnp.repeat(x, 4, axis=1), 4, axis=2)
  return [x, x, x], sr


@pytest.fixture
def local_model(monkeypatch):
  calls = []

  def fake_apply(model, x, tlsc=None):
    calls.append(x.shape)
    return _nearest_x4(model, x, tlsc)

  monkeypatch.setattr(forward, 'apply', fake_apply)
  return calls


@pytest.fixture(scope='module')
def tiny():
  return jdsr.build_model(jdsr.tiny_model_config(), rngs=0)


def test_real_model_any_size_and_layout(tiny):
  rng = np.random.default_rng(0)
  rgb = restore(tiny, rng.random((5, 7, 3), np.float32))
  assert rgb.shape == (20, 28, 3) and rgb.dtype == np.float32
  assert 0 <= rgb.min() and rgb.max() <= 1
  one = restore(tiny, np.full((1, 1), 0.5, np.float32), Options(tlsc=None))
  assert one.shape == (4, 4)


def test_matches_the_network_where_no_padding_is_needed(tiny):
  x = np.random.default_rng(1).random((32, 32, 3), np.float32)
  want = np.clip(np.asarray(jdsr.apply(tiny, x[None], tlsc=jdsr.TLSC())[1][0]), 0, 1)
  np.testing.assert_array_equal(restore(tiny, x), want)


def test_grayscale_and_alpha(local_model):
  gray = np.random.default_rng(2).random((6, 9), np.float32)
  out = restore(None, gray)
  assert out.shape == (24, 36)
  np.testing.assert_allclose(out, np.repeat(np.repeat(gray, 4, 0), 4, 1), atol=1e-6)
  assert restore(None, gray[..., None]).shape == (24, 36, 1)
  rgba = np.random.default_rng(3).random((6, 9, 4), np.float32)
  out = restore(None, rgba)
  assert out.shape == (24, 36, 4)
  np.testing.assert_allclose(out[..., 3], pixels.upscale(rgba[..., 3], 4), atol=1e-6)
  np.testing.assert_allclose(out[..., :3], np.repeat(np.repeat(rgba[..., :3], 4, 0), 4, 1),
                             atol=1e-6)


def test_similar_sizes_share_one_padded_shape(local_model):
  for h, w in [(20, 28), (24, 30), (9, 17), (32, 32)]:
    restore(None, np.zeros((h, w, 3), np.float32))
  assert set(local_model) == {(1, 32, 32, 3)}


@pytest.mark.parametrize('tile, overlap', [(48, 16), (64, 8), (40, 32)])
def test_tiles_blend_into_the_whole_image(local_model, tile, overlap):
  x = np.random.default_rng(4).random((70, 130, 3), np.float32)
  whole = restore(None, x, Options(tile=0))
  tiled = restore(None, x, Options(tile=tile, overlap=overlap))
  assert len(local_model) > 2 and set(local_model[1:]) == {(1, tile, tile, 3)}
  np.testing.assert_allclose(tiled, whole, atol=1e-6)


def test_large_images_are_tiled_by_default(local_model):
  restore(None, np.zeros((300, 40, 3), np.float32))
  assert set(local_model) == {(1, restore_lib.DEFAULT_TILE, restore_lib.DEFAULT_TILE, 3)}


@pytest.mark.parametrize('image, message', [
    (np.zeros((4, 4, 3), np.uint8), 'float image'),
    (np.zeros((4, 4, 2), np.float32), 'shape'),
    (np.zeros((0, 4, 3), np.float32), 'shape'),
])
def test_bad_images_are_rejected(image, message):
  with pytest.raises(ValueError, match=message):
    restore(None, image)


def test_bad_tile_is_rejected():
  with pytest.raises(ValueError, match='multiple of 8'):
    restore(None, np.zeros((64, 64, 3), np.float32), Options(tile=30))


def test_options_from_an_eval_config():
  from configs import eval_default
  config = eval_default.get_config()
  # The paper's settings: TLSC on, automatic tiles, the model's dtype, in JAX.
  assert Options.from_config(config) == Options()
  config.tlsc, config.ensemble, config.tile, config.dtype = False, True, 0, 'bfloat16'
  config.runtime, config.cache_dir = 'openvino', '/tmp/cache'
  assert Options.from_config(config) == Options(tlsc=None, ensemble=True, tile=0, dtype='bfloat16',
                                                runtime='openvino', cache_dir='/tmp/cache')
  config.tlsc, config.tlsc_base_size = True, 128
  assert Options.from_config(config).tlsc == jdsr.TLSC(base_size=(128, 128))

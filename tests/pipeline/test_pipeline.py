"""The training input pipeline (jdsr.data.pipeline): grain, no TensorFlow."""

from __future__ import annotations

import itertools
import pathlib

import numpy as np
import pytest
from PIL import Image

from jdsr.data import degrade, pipeline
from tests.helpers import ROOT

PHOTOS = ROOT / 'samples' / 'sharp'
N = 8  # synthetic examples
LR_H, LR_W, SCALE, CROP = 24, 32, 4, 8


def _examples(lr_h: int = LR_H) -> list[dict]:
  """N examples: blur_lr[y, x] = (y, x, 10·id), sharp_lr = 255 - blur_lr, sharp_hr = its 4× nearest upsample."""
  ys, xs = np.mgrid[:lr_h, :LR_W]
  out = []
  for i in range(N):
    blur = np.stack([ys, xs, np.full_like(ys, 10 * i)], axis=-1).astype(np.uint8)
    out.append({'id': f'ex{i}', 'blur_lr': blur, 'sharp_lr': 255 - blur,
                'sharp_hr': np.kron(blur, np.ones((SCALE, SCALE, 1), np.uint8))})
  return out


def _synthetic() -> pipeline.SequenceSource:
  return pipeline.SequenceSource(_examples())


def _batches(seed: int = 0, count: int = 5, **kwargs) -> list[dict]:
  options = dict(batch_size=4, seed=seed, lr_size=CROP, scale=SCALE) | kwargs
  return list(itertools.islice(pipeline.as_numpy(pipeline.train_batches(_synthetic(), **options)),
                               count))


def _transform_of(blur: np.ndarray) -> tuple[int, int, int]:
  """(k, h, w): the dihedral transform and LR corner that produce this blur_lr crop of _synthetic()."""
  pixels = np.round(blur * 255).astype(int)
  h, w = pixels[..., 0].min(), pixels[..., 1].min()
  ys, xs = np.mgrid[h:h + CROP, w:w + CROP]
  ref = np.stack([ys, xs], axis=-1)
  ks = [k for k in range(8) if np.array_equal(pipeline.dihedral(ref, k), pixels[..., :2])]
  assert len(ks) == 1, 'the blur crop is not a dihedral transform of an LR crop'
  return ks[0], h, w


def test_dihedral_matches_inference():
  from jdsr.inference import forward
  x = np.random.default_rng(0).random((5, 5, 3)).astype(np.float32)
  for k in range(8):
    expected = np.asarray(forward.dihedral(x[None], k))[0]
    np.testing.assert_array_equal(pipeline.dihedral(x, k), expected)


def test_batches_are_aligned_crops_with_all_transforms():
  ks, corners = set(), set()
  for batch in _batches(seed=3, count=30):
    assert batch['blur_lr'].shape == batch['sharp_lr'].shape == (4, CROP, CROP, 3)
    assert batch['sharp_hr'].shape == (4, SCALE * CROP, SCALE * CROP, 3)
    for key in pipeline.IMAGE_KEYS:
      assert batch[key].dtype == np.float32
      assert 0 <= batch[key].min() and batch[key].max() <= 1
    for i in range(4):
      blur = batch['blur_lr'][i]
      k, h, w = _transform_of(blur)
      ks.add(k)
      corners.add((h, w))
      assert 0 <= h <= LR_H - CROP and 0 <= w <= LR_W - CROP
      assert np.round(blur[0, 0, 2] * 255) == 10 * int(batch['id'][i].decode()[2:])
      np.testing.assert_allclose(batch['sharp_lr'][i], 1 - blur, atol=1e-6)
      np.testing.assert_array_equal(batch['sharp_hr'][i], np.kron(blur, np.ones((SCALE, SCALE, 1))))
  assert ks == set(range(8))
  assert len({h for h, _ in corners}) > 5 and len({w for _, w in corners}) > 5


def test_crop_and_augment_is_deterministic_and_accepts_float():
  example = _examples()[0]
  as_float = {k: v.astype(np.float32) / 255 if k != 'id' else v for k, v in example.items()}
  as_16bit = {k: v.astype(np.uint16) * 257 if k != 'id' else v for k, v in example.items()}
  drawn = pipeline.draws(7, 9)
  assert drawn == pipeline.draws(7, 9) and 0 <= drawn[2] < 8
  first = pipeline.crop_and_augment(example, drawn, CROP, SCALE)
  for other in (pipeline.crop_and_augment(example, drawn, CROP, SCALE),
                pipeline.crop_and_augment(as_float, drawn, CROP, SCALE),
                pipeline.crop_and_augment(as_16bit, drawn, CROP, SCALE)):
    for key in pipeline.IMAGE_KEYS:
      np.testing.assert_allclose(other[key], first[key], atol=1e-7)
  crops = {_transform_of(pipeline.crop_and_augment(example, pipeline.draws(7, j), CROP,
                                                   SCALE)['blur_lr']) for j in range(10)}
  assert len(crops) > 1
  with pytest.raises(TypeError, match='uint8, uint16 or float'):
    pipeline.crop_and_augment(dict(example, blur_lr=example['blur_lr'].astype(np.int32)), drawn,
                              CROP, SCALE)


def test_same_seed_same_batches_other_seed_differs():
  a, b, c = _batches(seed=1), _batches(seed=1), _batches(seed=2)
  for x, y in zip(a, b):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  assert any(not np.array_equal(x['blur_lr'], z['blur_lr']) for x, z in zip(a, c))


def test_every_epoch_is_a_new_permutation():
  epochs = [list(batch['id']) for batch in _batches(seed=0, count=4, batch_size=N)]
  for ids in epochs:
    assert sorted(ids) == sorted(f'ex{i}'.encode() for i in range(N))
  assert len({tuple(ids) for ids in epochs}) > 1


def test_resuming_at_any_position_gives_the_same_batches():
  straight = _batches(seed=4, count=7, batch_size=3)  # 21 elements: 2 epochs and a bit
  for k in (1, 3, 5):
    resumed = _batches(seed=4, count=7 - k, batch_size=3, start=3 * k)
    for x, y in zip(straight[k:], resumed, strict=True):
      for key in x:
        np.testing.assert_array_equal(x[key], y[key])


def test_the_loaders_state_resumes_it():
  """Setting the iterator's state (what a checkpoint saves) continues where it was."""
  straight = _batches(seed=4, count=5, batch_size=3)
  resumed = iter(pipeline.train_batches(_synthetic(), batch_size=3, seed=4, lr_size=CROP,
                                        scale=SCALE))
  resumed.set_state({'next_index': 2})
  for want in straight[2:]:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])
  assert resumed.get_state() == {'next_index': 5}


def test_threads_do_not_change_the_batches():
  one, four = _batches(seed=6, count=4, threads=1), _batches(seed=6, count=4, threads=4)
  for x, y in zip(one, four, strict=True):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


def test_resume_does_not_load_what_it_skips():
  class Counting(pipeline.SequenceSource):
    loads = 0

    def load(self, index, epoch):
      Counting.loads += 1
      return super().load(index, epoch)

  ds = pipeline.train_batches(Counting(_examples()), batch_size=1, seed=0, lr_size=CROP,
                              scale=SCALE, start=10_000 * N)
  next(iter(ds))
  assert Counting.loads < 4 * N  # prefetching, not 10,000 epochs


def test_hosts_share_each_global_batch():
  """Two shards with batch 2 give, block by block, the batches of one host with batch 4."""
  one = _batches(count=6, batch_size=4, seed=5)
  two = [_batches(count=6, batch_size=2, seed=5, shard=(i, 2)) for i in range(2)]
  for k, batch in enumerate(one):
    for key in batch:
      np.testing.assert_array_equal(np.concatenate([two[0][k][key], two[1][k][key]]), batch[key])
  resumed = _batches(count=3, batch_size=2, seed=5, shard=(1, 2), start=2 * 3)  # after 3 steps
  for a, b in zip(resumed, two[1][3:], strict=True):
    np.testing.assert_array_equal(a['blur_lr'], b['blur_lr'])
  with pytest.raises(ValueError, match='shard index'):
    pipeline.train_batches(_synthetic(), batch_size=1, seed=0, shard=(2, 2))


def test_too_small_is_an_error():
  example = _examples()[0]
  with pytest.raises(ValueError, match=r'ex0: the LR image \(H W \[24 32\]\) is smaller than'):
    pipeline.crop_and_augment(example, (0, 0, 0), lr_size=LR_H + 1, scale=SCALE)
  with pytest.raises(ValueError, match='smaller than'):  # when that example is loaded
    next(iter(pipeline.train_batches(_synthetic(), batch_size=1, seed=0, lr_size=LR_H + 1,
                                     scale=SCALE)))
  bad = dict(example, sharp_hr=example['sharp_hr'][:-4])
  with pytest.raises(ValueError, match='ex0: sharp_hr is not 4x the LR size'):
    pipeline.crop_and_augment(bad, (0, 0, 0), lr_size=CROP, scale=SCALE)


@pytest.fixture(scope='module')
def photos(tmp_path_factory) -> pathlib.Path:
  folder = tmp_path_factory.mktemp('photos')
  for name in ('astronaut.png', 'chelsea.png', 'coffee.png'):
    (folder / name).symlink_to(PHOTOS / name)
  return folder


def _photo_elements(folder: pathlib.Path, seed: int, count: int) -> list[dict]:
  source = pipeline.PhotoSource(folder, degrade.Degradation(), seed)
  return [pipeline.load(source, j % len(source), j // len(source)) for j in range(count)]


def test_photo_source(photos):
  a, b = _photo_elements(photos, 0, 6), _photo_elements(photos, 0, 6)
  assert [e['id'] for e in a] == [b'astronaut.png', b'chelsea.png', b'coffee.png'] * 2
  for e in a:
    h, w = e['sharp_hr'].shape[:2]
    with Image.open(photos / e['id'].decode()) as source:
      assert (h, w) == (source.height // 4 * 4, source.width // 4 * 4)
    assert e['blur_lr'].shape == e['sharp_lr'].shape == (h // 4, w // 4, 3)
    assert all(e[key].dtype == np.float32 for key in pipeline.IMAGE_KEYS)
  for x, y in zip(a, b):
    for key in pipeline.IMAGE_KEYS:
      np.testing.assert_array_equal(x[key], y[key])
  for i in range(3):  # epoch 1 re-degrades the same photo with a new kernel
    np.testing.assert_array_equal(a[i]['sharp_hr'], a[i + 3]['sharp_hr'])
    assert not np.allclose(a[i]['blur_lr'], a[i + 3]['blur_lr'], atol=1e-3)
  other = _photo_elements(photos, 1, 1)[0]
  assert not np.allclose(other['blur_lr'], a[0]['blur_lr'], atol=1e-3)


def test_photo_training_batches(photos):
  batch = next(pipeline.as_numpy(pipeline.train_batches(
      pipeline.PhotoSource(photos, degrade.Degradation(), 0), batch_size=2, seed=0)))
  assert batch['blur_lr'].shape == (2, 64, 64, 3) and batch['sharp_hr'].shape == (2, 256, 256, 3)


def test_photo_smaller_than_hr_crop_is_an_error(tmp_path):
  Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(tmp_path / 'small.png')
  ds = pipeline.train_batches(pipeline.PhotoSource(tmp_path, degrade.Degradation(), 0),
                              batch_size=1, seed=0)
  with pytest.raises(ValueError, match='small.png: .*smaller than'):
    next(iter(ds))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='no images'):
    pipeline.PhotoSource(tmp_path / 'empty', degrade.Degradation(), 0)


@pytest.mark.slow  # starts a worker process
def test_worker_processes_do_not_change_the_batches():
  threads = _batches(seed=8, count=3)
  workers = _batches(seed=8, count=3, workers=1)
  for x, y in zip(threads, workers, strict=True):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])

"""jdsr.data.sources: validation like the paper (all of Val300, the reference's crop)."""

import logging
import shutil

import numpy as np

from configs import default
from jdsr.io import imagefile, pixels
from jdsr.data import degrade, reds, sources


def test_reds_validation_is_val300_at_the_reference_crop_with_the_official_sharp_lr(tmp_path,
                                                                                     caplog):
  root = reds.write_fake_reds(tmp_path / 'REDS', 'val', sequences=3, frames=(9, 15, 19),
                              lr_size=(180, 320), sharp_lr=True)
  config = default.get_config()
  config.data.reds_manual_dir = str(root)
  items = sources.validation_set(config, ('blur_lr', 'sharp_lr', 'sharp_hr'))
  assert [item['id'] for item in items] == [f'{s:03d}_{f:08d}' for s in range(3) for f in (9, 19)]
  frame = reds.list_frames(root, 'val', 'val300', with_sharp_lr=True)[0]
  np.testing.assert_array_equal(items[0]['blur_lr'], pixels.quantize(
      imagefile.read_image(frame.blur_lr).rgb[2:178]))
  np.testing.assert_array_equal(items[0]['sharp_lr'], pixels.quantize(
      imagefile.read_image(frame.sharp_lr).rgb[2:178]))  # the official sharp LR
  assert items[0]['sharp_hr'].shape == (704, 1280, 3) and items[0]['sharp_hr'].dtype == np.uint8

  config.data.val_count = 3  # a faster subset: one frame of every sequence, not three of one
  assert [item['id'] for item in sources.validation_set(config, ('blur_lr', 'sharp_hr'))] == [
      '000_00000009', '001_00000009', '002_00000009']

  shutil.rmtree(root / 'val_sharp_bicubic')
  with caplog.at_level(logging.WARNING):
    items = sources.validation_set(config, ('blur_lr', 'sharp_lr'))
  assert 'val_sharp_bicubic is not under' in caplog.text  # the fallback is said in the log
  hr = imagefile.read_image(frame.sharp_hr).rgb
  np.testing.assert_array_equal(items[0]['sharp_lr'],
                                pixels.quantize(degrade.bicubic_down(hr, 4)[2:178]))


def test_photos_smaller_than_the_validation_crop_shrink_it_for_all_and_say_so(caplog):
  """configs/demo.py (96×96 LR crops) on samples/sharp: chelsea.png is 112×75 at LR."""
  from configs import demo
  config = demo.get_config('deblur')
  config.data.photos_dir = config.data.val_photos_dir = 'samples/sharp'
  with caplog.at_level(logging.WARNING):
    items = sources.validation_set(config, ('blur_lr', 'sharp_lr', 'sharp_hr'))
  assert len(items) == 4
  assert {item['blur_lr'].shape for item in items} == {(72, 96, 3)}
  assert {item['sharp_lr'].shape for item in items} == {(72, 96, 3)}
  assert {item['sharp_hr'].shape for item in items} == {(288, 384, 3)}
  assert ('validation image chelsea.png is smaller than the 96x96 crop (config.data.val_lr_size): '
          'every validation crop is 96x72') in caplog.text
  config.data.val_lr_size = 64  # every image has it: no word
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    assert {i['blur_lr'].shape for i in sources.validation_set(config, ('blur_lr',))} == {
        (64, 64, 3)}
  assert 'smaller than' not in caplog.text

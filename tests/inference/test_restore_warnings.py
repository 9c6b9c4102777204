"""jdsr.inference.restore warns about inputs outside [0, 1] and NaN, and takes tiles without overlap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import jdsr
from jdsr.inference import restore as restore_lib


@pytest.mark.slow  # compiles the tiny model for several shapes (about 20 s the first time)
def test_restore_warns_about_values_outside_0_1_and_takes_overlap_0():
  model = jdsr.build_model(jdsr.tiny_model_config(), rngs=0)
  image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
  with pytest.warns(UserWarning, match=r'values in \[.*\], expected \[0, 1\]'):
    restore_lib.restore(model, image * 255)
  bad = image.copy()
  bad[0, 0, 0] = np.nan
  with pytest.warns(UserWarning, match='1 NaN or inf values'):
    restore_lib.restore(model, bad)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    out = restore_lib.restore(model, np.tile(image, (4, 4, 1)),
                              restore_lib.Options(tile=24, overlap=0))
  assert out.shape == (256, 256, 3) and np.isfinite(out).all()
  with pytest.raises(ValueError, match='overlap must be 0 or more'):
    restore_lib.restore(model, image, restore_lib.Options(tile=24, overlap=-1))

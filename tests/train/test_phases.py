"""The three phases as data (jdsr.train.phases): groups, freezing, the optimizer, the step's program."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

import jdsr
from jdsr.train import compiling, loop, phases as phases_lib
from tests import helpers


def _config(phase: str, **overrides):
  return helpers.photos_config(helpers.SHARP, helpers.SHARP, phase, **overrides)


def _group(key: str) -> str:
  return 'sr' if helpers.is_sr(key) else 'deblur'


def test_each_phase_trains_its_groups_and_freezes_the_rest():
  params = nnx.state(jdsr.build_model(jdsr.tiny_model_config()), nnx.Param)
  keys = list(helpers.flat(params))
  assert "['act']['negative_slope'].value" in keys
  for phase, expected in [('deblur', lambda k: 'frozen' if helpers.is_sr(k) else 'deblur'),
                          ('sr', lambda k: 'sr' if helpers.is_sr(k) else 'frozen'),
                          ('joint', lambda k: 'sr' if helpers.is_sr(k) else 'deblur')]:
    trained, frozen = phases_lib.split_params(params, phases_lib.get(phase))
    labels = {**{k: 'frozen' for k in helpers.flat(frozen)},
              **{k: _group(k) for k in helpers.flat(trained)}}
    assert [labels[k] for k in keys] == [expected(k) for k in keys], phase
    assert len(labels) == len(keys)  # each parameter is either trained or frozen
  trained, frozen = phases_lib.split_params(params, phases_lib.get('sr'))
  assert all(helpers.is_sr(k) for k in helpers.flat(trained))
  assert not any(helpers.is_sr(k) for k in helpers.flat(frozen))
  with pytest.raises(ValueError, match='phase'):
    phases_lib.get('deblurr')


def test_frozen_parameters_have_no_optimizer_state():
  params = nnx.state(jdsr.build_model(jdsr.tiny_model_config()), nnx.Param)
  sizes = {k: v.size for k, v in helpers.flat(params).items()}
  for phase, trained in [('deblur', lambda k: not helpers.is_sr(k)), ('sr', helpers.is_sr),
                         ('joint', lambda k: True)]:
    opt_state = phases_lib.init_state(params, phases_lib.get(phase),
                                  phases_lib.make_optimizer(_config(phase))).opt_state
    # Adam keeps two moments per trained parameter (and a few scalar step counts): nothing else.
    leaves = jax.tree.leaves(opt_state)
    moments = [leaf.size for leaf in leaves if leaf.dtype == np.float32]
    assert sum(moments) == 2 * sum(n for k, n in sizes.items() if trained(k)), phase
    assert all(leaf.dtype == np.int32 and leaf.ndim == 0 for leaf in leaves
               if leaf.dtype != np.float32)


def test_learning_rates_anneal_to_the_minimum():
  config = _config('joint', num_train_steps=10, learning_rate=1e-4, sr_learning_rate=3e-4)
  rates = phases_lib.learning_rates(config)
  assert float(rates['deblur'](0)) == pytest.approx(1e-4)
  assert float(rates['sr'](0)) == pytest.approx(3e-4)
  assert float(rates['deblur'](10)) == pytest.approx(1e-6)
  assert float(rates['sr'](10)) == pytest.approx(1e-6)


def _lowered_step(config, phase: str = 'joint') -> str:
  """The text of the training step ``config`` compiles (the tiny model, a batch of 2)."""
  model = loop.initial_model(config)
  graphdef, params = nnx.split(model, nnx.Param)
  tx = phases_lib.make_optimizer(config)
  state = phases_lib.init_state(params, phases_lib.get(phase), tx)
  step = jax.jit(phases_lib.make_train_step(graphdef, phases_lib.get(phase), tx))
  batch = {key: np.zeros((2, 16 * s, 16 * s, 3), np.float32)
           for key, s in (('blur_lr', 1), ('sharp_lr', 1), ('sharp_hr', 4))}
  batch['weight'] = np.ones(2, np.float32)
  rates = phases_lib.rates_at(phases_lib.learning_rates(config), 3)
  return step.lower(state, batch, rates).as_text()


def test_runs_that_differ_only_in_learning_rates_and_length_share_one_program():
  one = _config('joint', num_train_steps=4, learning_rate=1e-4, min_learning_rate=1e-6)
  other = _config('joint', num_train_steps=40, learning_rate=3e-4, sr_learning_rate=5e-4,
                  min_learning_rate=1e-7)
  assert _lowered_step(one) == _lowered_step(other)
  # What is a constant of the program does make another one (so the comparison can fail).
  assert _lowered_step(_config('joint', adam_b1=0.8)) != _lowered_step(one)
  # In one process, the loop builds a structure's programs once.
  mesh = compiling.mesh()
  programs = [compiling.programs(loop.initial_model(config), 'joint', (0.9, 0.999, 1e-8), True, 1, mesh)
              for config in (one, other)]
  assert programs[0] is programs[1]
  assert compiling.programs(loop.initial_model(one), 'sr', (0.9, 0.999, 1e-8), True, 1,
                       mesh) is not programs[0]

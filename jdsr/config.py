"""Model configuration (the sizes of the network), and reading configs from the command line."""

from __future__ import annotations

import os
import re
import sys

import ml_collections

from jdsr.errors import one_line

# Fields that choose how the network is computed, not what it is: a checkpoint
# loads under any value of them (``jdsr.checkpoints.load``).
COMPUTE_FIELDS = ('conv_impl', 'dtype')
DTYPES = ('float32', 'bfloat16')


def model_config(**overrides) -> ml_collections.ConfigDict:
  """The paper's final model (34,116,641 parameters), with ``overrides`` applied."""
  config = ml_collections.ConfigDict()
  # Deblurring module (MPRNet).
  config.n_feat = 96  # channels of the U-Nets' first level
  config.scale_unetfeats = 48  # channels added at each U-Net level
  config.scale_orsnetfeats = 32  # channels added in the ORSNet (96 + 32 = 128)
  config.num_unet_cab = 2  # CABs per encoder/decoder level
  config.num_cab = 8  # CABs per ORB
  config.reduction = 4  # channel reduction of the CA layers
  # Transformation and super-resolution module.
  config.sr_feat = 64  # channels of the super-resolution trunk
  config.n_resgroups = 17  # residual groups (0: the paper's Baseline, 12: Model-1)
  config.n_resblocks = 10  # RMS-CABs per group
  config.mscam_reduction = 8  # MS-CAM inner channels = sr_feat // mscam_reduction
  config.scale = 4
  # How 3x3 convolutions are computed (the same numbers to float32 rounding):
  # 'winograd': Winograd F(4x4, 3x3), faster on CPUs; 'xla': XLA's own
  # convolution (best on GPUs); 'auto': winograd on CPU, xla elsewhere.
  config.conv_impl = 'auto'
  # The convolutions' operand dtype: 'float32', or 'bfloat16' (mixed precision: images and
  # kernels enter each convolution in bfloat16, which sums in float32; parameters,
  # activations, outputs and losses stay float32; 46 dB from float32 on the golden test).
  config.dtype = 'float32'
  config.update(overrides)
  return config


def tiny_model_config() -> ml_collections.ConfigDict:
  """A few thousand parameters with every part of the architecture, for tests."""
  return model_config(n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_unet_cab=2,
                      num_cab=2, sr_feat=8, n_resgroups=2, n_resblocks=2,
                      mscam_reduction=4)


def demo_model_config() -> ml_collections.ConfigDict:
  """The demo model that ships with jdsr (``jdsr.DEMO_MODEL``): 344,425 parameters."""
  return model_config(n_feat=16, scale_unetfeats=8, scale_orsnetfeats=8, num_unet_cab=1,
                      num_cab=2, reduction=4, sr_feat=16, n_resgroups=2, n_resblocks=3,
                      mscam_reduction=4)


# The architectures by name: the paper's three (its final model, Model-1 and the
# Baseline without the RMS-CAB trunk), the demo model and the tiny test model.
MODELS = {
    'paper': model_config,
    'model1': lambda: model_config(n_resgroups=12),
    'baseline': lambda: model_config(n_resgroups=0),
    'demo': demo_model_config,
    'tiny': tiny_model_config,
}


def resolve_model(spec: str) -> ml_collections.ConfigDict:
  """A model config from a name of ``MODELS`` or a config file (``FILE.py`` or ``FILE.py:ARG``).

  The file's ``get_config(ARG)`` may return an experiment config (its ``model``
  is taken) or a model config. Anything else is a one-line ValueError.
  """
  if spec in MODELS:
    return MODELS[spec]()
  path, _, arg = spec.partition(':')
  if not path.endswith('.py'):
    raise ValueError(f'--config {spec}: not a model name ({", ".join(MODELS)}) or a .py file')
  if not os.path.isfile(path):
    raise ValueError(f'--config {spec}: no such file')
  import importlib.util
  try:
    module_spec = importlib.util.spec_from_file_location('_jdsr_config_file', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except Exception as e:  # noqa: BLE001 - whatever the file raises
    raise ValueError(f'--config {spec}: cannot load the config file '
                     f'({one_line(e, kind=True, last=True)})') from e
  config = config.model if 'model' in config else config
  missing = sorted(set(model_config()) - set(config))
  if missing:
    raise ValueError(f'--config {spec}: not a model config (no {", ".join(missing[:4])})')
  return model_config(**config)


# -- command lines ------------------------------------------------------------------


USAGE_ERROR = 2  # the exit status of a usage error, as argparse's (the console scripts')


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with any error in one line: ``app.run(main, flags_parser=parse_flags)``.

  A config file that cannot be loaded (a syntax error, ``get_config`` raising)
  is reported by absl as a traceback; here it is one line, and an override of a
  field the config does not have (``--config.foo=1``) names that field. Every
  such error is a usage error: exit status 2.
  """
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - flags.Error, or whatever loading a config file raised
    message = one_line(e, last=True)
    if not isinstance(e, flags.Error):
      message = (unknown_field(argv, e) or
                 f'cannot load the config file ({type(e).__name__}: {message})')
    usage_error(argv, message)


def usage_error(argv: list[str], message: str) -> None:
  """Prints ``PROG: error: MESSAGE`` and exits with ``USAGE_ERROR``."""
  print(f'{os.path.basename(argv[0])}: error: {message}', file=sys.stderr)
  sys.exit(USAGE_ERROR)


def unknown_field(argv: list[str], error: BaseException) -> str | None:
  """The message for an override of a config field that does not exist, if that is ``error``."""
  if not isinstance(error, (AttributeError, KeyError)):
    return None
  for arg in argv[1:]:
    match = re.match(r'--(\w+)\.([\w.]+)(=|$)', arg)
    if match and any(f"'{part}'" in str(error) for part in match[2].split('.')):
      name, field = match[1], match[2]
      args = argv[1:]
      source = next((a.split('=', 1)[1] if '=' in a else (args[i + 1] if i + 1 < len(args) else None)
                     for i, a in enumerate(args) if a == f'--{name}' or a.startswith(f'--{name}=')),
                    None)
      return (f'--{name}.{field}: the config{f" ({source})" if source else ""} has no field '
              f'{field!r}; its get_config() lists the fields there are')
  return None


def from_flag(holder) -> ml_collections.ConfigDict | None:
  """The config of a ``config_flags`` flag; a file that cannot be loaded is one ValueError line.

  (``config_flags`` hands out a stand-in that raises on first use when the file
  could not be loaded: a missing file, a syntax error, a failing ``get_config``
  would otherwise surface as a traceback wherever the config is first read.)
  """
  try:
    config = holder.value
    if config is not None:
      config.get('model')  # the stand-in raises here
    return config
  except Exception as e:  # noqa: BLE001 - whatever loading the file raised
    raise ValueError(f'--{holder.name}: cannot load the config file '
                     f'({one_line(e, kind=True, last=True)})') from e


def define_compilation_cache_flag() -> None:
  """Defines ``--compilation_cache`` (on by default; ``use_compilation_cache`` acts on it)."""
  from absl import flags
  flags.DEFINE_bool('compilation_cache', True,
                    'Keep compiled programs in a persistent cache (~/.cache/jdsr/jax, or '
                    '$JAX_COMPILATION_CACHE_DIR), so that the next run does not compile again.')


def use_compilation_cache(enabled: bool = True) -> str | None:
  """Turn on JAX's persistent compilation cache (the flag ``--compilation_cache``), or off.

  Programs compiled once are then read back on later runs instead of being
  compiled again. The cache goes to ``$XDG_CACHE_HOME/jdsr/jax`` (by default
  ``~/.cache/jdsr/jax``) unless ``JAX_COMPILATION_CACHE_DIR`` names another
  folder. Returns the folder, or None when off.
  """
  import jax
  if not enabled:
    jax.config.update('jax_enable_compilation_cache', False)
    return None
  directory = jax.config.jax_compilation_cache_dir
  if not directory:
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    directory = os.path.join(cache, 'jdsr', 'jax')
    jax.config.update('jax_compilation_cache_dir', directory)
  return directory

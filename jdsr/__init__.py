"""jdsr: joint motion deblurring and ×4 super-resolution (Shoyan, 2021) in JAX/Flax NNX."""

from jdsr.api import apply, build_model, load_checkpoint, load_pytorch, save_checkpoint, save_pytorch
from jdsr.config import model_config, tiny_model_config
from jdsr.layers import TLSC
from jdsr.model import JDSR

__all__ = [
    'JDSR', 'TLSC', 'apply', 'build_model', 'load_checkpoint', 'load_pytorch', 'model_config',
    'save_checkpoint', 'save_pytorch', 'tiny_model_config',
]

"""jdsr: joint motion deblurring and ×4 super-resolution (Shoyan, 2021) in JAX/Flax NNX.

    model = jdsr.load('models/demo')              # any checkpoint: .pth, jdsr, training workdir
    stage_images, sr = jdsr.apply(model, x)       # jit-compiled model(x)
    jdsr.save(model, 'exported.pth')              # official format (or a jdsr checkpoint dir)
"""

from jdsr.checkpoints import CheckpointError, load, save
from jdsr.config import model_config, tiny_model_config
from jdsr.inference import apply
from jdsr.layers import TLSC
from jdsr.model import JDSR, build_model

__all__ = [
    'CheckpointError', 'JDSR', 'TLSC', 'apply', 'build_model', 'load', 'model_config', 'save',
    'tiny_model_config',
]

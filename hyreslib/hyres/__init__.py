"""HyRES: a standard JPEG base layer plus a learned residual codec (hyperprior + checkerboard
context), written as real ``.hyr`` files.

Modules: :mod:`.transforms` (g_a/g_s/h_a/h_s), :mod:`.entropy` (finer Gaussian coding tables),
:mod:`.residual` (the CompressionModel), :mod:`.refine` (decoder-side post-filter),
:mod:`.bitstream` (file format), :mod:`.codec` (encode/decode, checkpoints), :mod:`.train`
(loss, data transform, validation), :mod:`.evaluate` (real-file metrics), :mod:`.cli`.
"""

from .codec import HyresCodec, JpegSettings, LatentMismatchError
from .refine import MultiScaleRefine
from .residual import ResidualCodec, ResidualConfig

__all__ = ["HyresCodec", "JpegSettings", "LatentMismatchError", "MultiScaleRefine", "ResidualCodec",
           "ResidualConfig"]

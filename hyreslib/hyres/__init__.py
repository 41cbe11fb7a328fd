"""HyRES: a standard JPEG base layer plus a learned residual codec (hyperprior + checkerboard
context), written as real ``.hyr`` files.

Modules: :mod:`.transforms` (g_a/g_s/h_a/h_s), :mod:`.conditioning` (the base pyramid and
conditional synthesis), :mod:`.entropy` (finer Gaussian coding tables), :mod:`.fixed_point` (integer-exact
convolutions for the device-independent parse), :mod:`.residual` (the CompressionModel), :mod:`.refine`
(decoder-side post-filter), :mod:`.tiling` (large images in overlapping tiles), :mod:`.perceptual` (VGG16 loss),
:mod:`.bitstream` (file format), :mod:`.codec` (encode/decode, coding modes, checkpoints), :mod:`.rate`
(rate control: a target bpp -> base quality and model),
:mod:`.train` (loss, data transform, validation), :mod:`.stages` (λ phases, refinement, the
bmshj2018 reference), :mod:`.reference` (that reference's real-byte codec), :mod:`.study` (the
equal-budget study), :mod:`.evaluate` (real-file metrics), :mod:`.figures`, :mod:`.cli`,
:mod:`.train_cli`.
"""

from .codec import HyresCodec, JpegSettings, LatentMismatchError
from .refine import MultiScaleRefine
from .residual import ResidualCodec, ResidualConfig

__all__ = ["HyresCodec", "JpegSettings", "LatentMismatchError", "MultiScaleRefine", "ResidualCodec",
           "ResidualConfig"]

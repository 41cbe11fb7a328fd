"""HyRES Kit: hybrid learned image compression (JPEG base + learned residual) and hideNet-style
hierarchical pixel splitting, as real codecs with honest, byte-counted rates."""

__version__ = "0.1.0"

import warnings

# compressai imports torch_geometric, which calls the deprecated torch.jit.script at import time:
# a FutureWarning in every notebook and command that is about neither. Silenced here, before any
# module of the kit can import compressai.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

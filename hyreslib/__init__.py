"""HyRES Kit: hybrid learned image compression (JPEG base + learned residual) and hideNet-style
hierarchical pixel splitting, as real codecs with honest, byte-counted rates."""

__version__ = "0.1.0"

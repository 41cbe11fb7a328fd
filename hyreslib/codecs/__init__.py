"""Bytes: the container, the ANS entropy coder, the JPEG base layer and the standard image codecs."""

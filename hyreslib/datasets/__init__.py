"""Where images come from: data roots, image sets and training crops, verified downloads."""

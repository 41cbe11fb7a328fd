"""Foundations every layer uses: project and data roots, crash-safe files, resource limits, devices, images,
checkpoints."""

"""Measuring and recording: metrics, run manifests, saved reconstructions, RD tables, figures, the comparison widget."""

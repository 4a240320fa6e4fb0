"""Connectors' sources: each turns one outside system into signals (see `base.Source`)."""

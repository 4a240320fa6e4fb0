"""Hearth: a self-hosted AI platform in one package."""

__version__ = "0.1.0"

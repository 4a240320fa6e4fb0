"""Hearth's chat context."""

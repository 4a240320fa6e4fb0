"""Hearth's voice context."""

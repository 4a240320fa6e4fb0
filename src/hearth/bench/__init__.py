"""Hearth's bench context."""

"""Hearth's rag context."""

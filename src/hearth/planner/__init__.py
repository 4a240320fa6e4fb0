"""Hearth's planner context."""

"""Helpers shared across test packages (not tests themselves)."""

"""The portfolio service."""

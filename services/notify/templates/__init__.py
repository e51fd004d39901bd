"""The report's Jinja2 templates (HTML and plain text), shipped as package data."""

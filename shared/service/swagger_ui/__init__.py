"""Swagger UI's assets, vendored so `/docs` loads nothing from a CDN (VENDORED.md)."""

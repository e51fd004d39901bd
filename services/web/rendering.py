"""Every answer's security headers and the pages' templates (docs/web.md, Sign-in)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
FRAMING_POLICY = CONTENT_SECURITY_POLICY + "; frame-src 'self'"
"""The Backtests page's policy: it frames a report of this service, nothing else."""

_templates = Environment(
    loader=PackageLoader("services.web", "templates"), autoescape=select_autoescape(default=True)
)


def secure(
    response: Response,
    *,
    no_store: bool = True,
    policy: str = CONTENT_SECURITY_POLICY,
    frame_options: str = "DENY",
) -> Response:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = frame_options
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    return response


def render(
    template: str, code: int = 200, *, policy: str = CONTENT_SECURITY_POLICY, **context: Any
) -> Response:
    html = _templates.get_template(template).render(**context)
    return secure(HTMLResponse(html, status_code=code), policy=policy)

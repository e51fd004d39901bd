"""Every answer's security headers and the pages' templates (docs/web.md, Sign-in)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
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

CENT = Decimal("0.01")


def _decimal(value: Any) -> Decimal | None:
    """The read models keep numbers as the events' decimal strings; None for a missing one."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Any, *, signed: bool = False) -> str:
    """Dollars to the cent with thousands separators (a P&L `signed`: +$1.00 / -$1.00)."""
    amount = _decimal(value)
    if amount is None:
        return ""
    cents = amount.quantize(CENT, ROUND_HALF_EVEN)
    sign = "-" if cents < 0 else ("+" if signed and cents > 0 else "")
    return f"{sign}${abs(cents):,.2f}"


def percent(value: Any) -> str:
    """A weight (a fraction of the portfolio) as a percentage to two decimals."""
    fraction = _decimal(value)
    if fraction is None:
        return ""
    return f"{(100 * fraction).quantize(CENT, ROUND_HALF_EVEN):.2f}%"


_templates.filters["money"] = money
_templates.filters["pnl"] = lambda value: money(value, signed=True)
_templates.filters["percent"] = percent


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

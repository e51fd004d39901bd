"""A Slack-compatible webhook post (`{"text", "blocks"}`), accepted as is by Slack incoming
webhooks and by the many chat tools that copy their format."""

from __future__ import annotations

from typing import Any

import httpx

from services.notify.channels.port import ChannelName, DeliveryError
from services.notify.rendering import RenderedReport

WEBHOOK_TIMEOUT_S = 10.0
SECTION_LIMIT = 3000
"""Slack refuses a section text longer than this."""
HEADER_LIMIT = 150


def slack_payload(report: RenderedReport) -> dict[str, Any]:
    return {
        "text": f"{report.subject}\n{report.summary}",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": report.subject[:HEADER_LIMIT]},
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": report.summary[:SECTION_LIMIT]},
            },
        ],
    }


class WebhookNotifier:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = WEBHOOK_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._transport = transport

    @property
    def channel(self) -> ChannelName:
        return "webhook"

    @property
    def target(self) -> None:
        return None

    async def send(self, report: RenderedReport) -> None:
        # Errors are restated without the URL: a webhook URL is its own credential.
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout_s, transport=self._transport
            ) as client:
                response = await client.post(self._url, json=slack_payload(report))
        except httpx.HTTPError as error:
            raise DeliveryError(f"webhook POST failed: {type(error).__name__}") from None
        if not response.is_success:
            raise DeliveryError(
                f"webhook answered HTTP {response.status_code}: {response.text[:200]}"
            )

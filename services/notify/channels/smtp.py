"""Email over SMTP with aiosmtplib (docs/trading-rules.md, Channels): one `multipart/alternative`
message, plain text first, HTML second. STARTTLS and login are used only when the settings ask."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from services.notify.channels.port import ChannelName, DeliveryError
from services.notify.rendering import RenderedReport
from shared.settings import Settings

SMTP_TIMEOUT_S = 30.0


def email_message(report: RenderedReport, sender: str, recipients: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = report.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(report.text)
    message.add_alternative(report.html, subtype="html")
    return message


class SmtpNotifier:
    def __init__(self, settings: Settings, *, timeout_s: float = SMTP_TIMEOUT_S) -> None:
        if not settings.smtp_host:
            raise ValueError("SmtpNotifier needs ALCHEMISER_SMTP_HOST")
        self._settings = settings
        self._host = settings.smtp_host
        self._timeout_s = timeout_s

    @property
    def channel(self) -> ChannelName:
        return "email"

    @property
    def target(self) -> None:
        return None

    async def send(self, report: RenderedReport) -> None:
        settings = self._settings
        recipients = settings.email_recipients
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        try:
            await aiosmtplib.send(
                email_message(report, settings.email_from, recipients),
                hostname=self._host,
                port=settings.smtp_port,
                start_tls=settings.smtp_starttls,
                username=settings.smtp_username or None,
                password=password if settings.smtp_username else None,
                timeout=self._timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryError(
                f"SMTP {self._host}:{settings.smtp_port}: {type(error).__name__}: {error}"
            ) from error

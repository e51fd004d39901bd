"""Local servers the notify channels talk to in tests: a real SMTP server (aiosmtpd) and a tiny
HTTP server, both on 127.0.0.1 with a port the OS picks, in the test's own event loop."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Mailbox:
    """What the SMTP server accepted: parsed messages and the logins used."""

    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth: Any
    ) -> AuthResult:
        assert isinstance(auth, LoginPassword)
        self.logins.append(auth.login.decode())
        return AuthResult(success=auth.password == b"s3cret")


@asynccontextmanager
async def smtp_server() -> AsyncIterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            mailbox,
            hostname="127.0.0.1",
            authenticator=mailbox.authenticate,
            auth_require_tls=False,
        ),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, mailbox
    finally:
        server.close()
        await server.wait_closed()


def unused_port() -> int:
    """A port nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class HttpSink:
    """Bodies POSTed to it, parsed as JSON, or as a form when sent as one (apprise's `form://`);
    answers `status` to every request."""

    status: int = 200
    bodies: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.paths.append(request_line.split(" ")[1])
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self.bodies.append(dict(parse_qsl(body.decode())))
        else:
            self.bodies.append(json.loads(body))
        reply = b"ok" if self.status < 400 else b"server error"
        writer.write(
            f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(reply)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + reply
        )
        await writer.drain()
        writer.close()


@asynccontextmanager
async def http_server(status: int = 200) -> AsyncIterator[tuple[str, HttpSink]]:
    sink = HttpSink(status=status)
    server = await asyncio.start_server(sink.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/services/T000/B000/secret-token", sink
    finally:
        server.close()
        await server.wait_closed()

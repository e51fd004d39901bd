"""`alchemiser trigger` sends the token the services use — the configured one, or the one a
paper service generated under the same data dir — and never makes a new one, which the running
service would refuse with 401."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.cli import run_alchemiser


class Recorder(BaseHTTPRequestHandler):
    """A strategy service stand-in that accepts only `Bearer right-token`."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        header = self.headers.get("Authorization", "")
        Recorder.seen.append(header)
        accepted = header == "Bearer right-token"
        body = (
            b'{"id": "wf-1", "status": "running"}'
            if accepted
            else b'{"detail": "missing or wrong bearer token"}'
        )
        self.send_response(202 if accepted else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def strategy_url() -> Iterator[str]:
    Recorder.seen = []
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_token_anywhere_it_says_where_to_find_one_and_writes_no_file(
    tmp_path: Path, strategy_url: str
) -> None:
    result = run_alchemiser(tmp_path, "trigger", "--force", "--url", strategy_url)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "ALCHEMISER_API_TOKEN" in result.stderr
    assert str((tmp_path / "data" / "api-token").resolve()) in result.stderr
    assert not (tmp_path / "data" / "api-token").exists()
    assert Recorder.seen == []


def test_it_sends_the_token_a_paper_service_generated_in_the_same_data_dir(
    tmp_path: Path, strategy_url: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "api-token").write_text("right-token\n", encoding="utf-8")

    result = run_alchemiser(tmp_path, "trigger", "--force", "--url", strategy_url)

    assert result.returncode == 0, result.stderr
    assert Recorder.seen == ["Bearer right-token"]


def test_a_refused_token_is_one_line_naming_where_it_came_from_and_what_to_use(
    tmp_path: Path, strategy_url: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "api-token").write_text("stale-token\n", encoding="utf-8")

    result = run_alchemiser(tmp_path, "trigger", "--force", "--url", strategy_url)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "401" in result.stderr
    assert str((tmp_path / "data" / "api-token").resolve()) in result.stderr
    assert "ALCHEMISER_API_TOKEN" in result.stderr
    assert "stale-token" not in result.stderr

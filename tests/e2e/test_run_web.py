"""`alchemiser run --web`: the embedded run, then the dashboard over the store it wrote, on
127.0.0.1, until stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

TOKEN = "run-web-token-0123456789abcdef"


def test_run_with_web_serves_the_run_it_made(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALCHEMISER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run", "--web", "--port", str(port)],
        cwd=tmp_path,
        env={
            **env,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "ALCHEMISER_API_TOKEN": TOKEN,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        with httpx.Client(base_url=base, timeout=5) as client:
            while True:
                assert process.poll() is None, process.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the dashboard did not start"
                try:
                    listed = client.get(
                        "/api/workflows", headers={"Authorization": f"Bearer {TOKEN}"}
                    )
                except httpx.TransportError:
                    time.sleep(0.5)
                    continue
                if listed.status_code == 200 and listed.json():
                    break
                time.sleep(0.5)
            (workflow,) = listed.json()
            assert workflow["status"] == "completed" and workflow["account_id"] == "default"
            assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM, err[-3000:]  # stopped as a server is
    assert "COMPLETED" in out and f"dashboard: http://127.0.0.1:{port}/" in err

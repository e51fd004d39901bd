"""The pages over the installation's files: Strategies (the bundled config, the recorded
signals as a stacked chart, the outline with the last decision path), Backtests (the kept
reports, framed in a sandbox under a policy of their own) and Replays (what `alchemiser replay
--save` kept)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient

from services.commands.replay import _save
from services.replay import Decision, ReplayResult
from services.web.outline import read_outline
from shared.events import Event, SignalGenerated
from shared.eventstore.store import SqlEventStore
from tests.integration.web.history import record
from tests.integration.web.test_pages import sign_in
from tests.unit.notify import workflows

REPORT = """<!doctype html><html lang="en"><head><title>r</title>
<style>body { color: #111; }</style></head><body>
<p style="color: #a00">drawn</p>
<script type="application/json" id="backtest-data">{"a": 1}</script>
<script>document.body.dataset.ran = "yes";</script>
</body></html>"""


def sha256(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def test_strategies_list_the_configured_files_with_their_recorded_allocations(
    started: tuple[TestClient, list[str], list[str]],
) -> None:
    client, _, _ = started
    sign_in(client)
    page = client.get("/strategies").text
    assert "allocation.prod.json" in page and "2-Nuclear.clj" in page
    charts = re.findall(r'data-stacked="([^"]+)"', page)
    chart = json.loads(charts[0].replace("&#34;", '"'))
    assert [s["label"] for s in chart["series"]] == ["SPY", "TQQQ"]  # 1-KMLM's symbols
    assert chart["series"][-1]["values"] == [1.0] * len(chart["x"])  # stacked to the whole
    assert len(chart["x"]) == 4  # the four runs that got a signal
    outline = client.get("/strategies/1-KMLM")
    assert outline.status_code == 200
    assert "<details" in outline.text and "defsymphony" in outline.text
    assert "(&gt; (rsi SPY 10) 80)" in outline.text  # the last decision path
    assert client.get("/strategies/nope").status_code == 404


def test_the_outline_opens_out_the_last_decision_path(tmp_path: Path) -> None:
    source = tmp_path / "s.clj"
    source.write_text(
        '(defsymphony "s" {}\n'
        " (weight-equal\n"
        '  [(if (> (rsi "SPY" {:window 10}) 80)\n'
        '     [(asset "UVXY")]\n'
        '     [(group "calm" [(asset "SPY") (asset "TLT")])])]))\n'
    )
    outline = read_outline(source, {"3:4"})
    (root,) = outline.roots
    assert root.label.startswith('defsymphony "s"') and root.on_path and not root.taken
    decision = root.children[0].children[0]
    assert decision.label == 'if (> (rsi "SPY" {:window 10}) 80)'
    assert decision.taken and decision.position == "3:4"
    assert [c.label for c in decision.children] == ['asset "UVXY"', 'group "calm"']
    assert outline.forms == 7 and outline.full


def test_backtests_list_their_metrics_and_frame_the_report_under_its_own_policy(
    started: tuple[TestClient, list[str], list[str]], tmp_path: Path
) -> None:
    client, _, _ = started
    sign_in(client)
    assert "No report kept yet" in client.get("/backtests").text
    folder = tmp_path / "backtests"
    folder.mkdir()
    name = "backtest-20260302T120000000000Z-ab12cd34ef56"
    (folder / f"{name}.html").write_text(REPORT)
    headline = {"parameters": {"start": "2025-01-02"}, "metrics": {"cagr": 0.1234, "sharpe": 1.5}}
    (folder / f"{name}.json").write_text(json.dumps(headline))
    listed = client.get("/backtests").text
    assert f'href="/backtests/{name}"' in listed and "12.34%" in listed and "1.50" in listed
    page = client.get(f"/backtests/{name}")
    assert 'sandbox="allow-scripts"' in page.text and "allow-same-origin" not in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    report = client.get(f"/backtests/{name}/report")
    policy = report.headers["content-security-policy"]
    assert sha256('document.body.dataset.ran = "yes";') in policy
    assert sha256("body { color: #111; }") in policy and sha256("color: #a00") in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'self'" in policy
    assert report.headers["x-frame-options"] == "SAMEORIGIN"
    assert client.get("/api/workflows").status_code == 200  # the session still answers
    assert client.get("/").headers["x-frame-options"] == "DENY"  # the rest stays strict
    for wrong in ("backtest-..%2F..%2Fevents", "nope", "backtest-2026-zz"):
        assert client.get(f"/backtests/{wrong}/report").status_code == 404


def test_a_saved_replay_shows_each_side_and_the_differences(
    started: tuple[TestClient, list[str], list[str]], tmp_path: Path
) -> None:
    client, ids, _ = started
    sign_in(client)
    spy = Decision("SPY", "BUY", Decimal("100.00"))
    tlt = Decision("TLT", "SELL", Decimal("50.00"))
    result = ReplayResult(
        workflow_id=ids[0],
        started_from="WorkflowStarted",
        targets={},
        recorded_targets={},
        plan=(spy,),
        recorded_plan=(spy, tlt),
        orders=(Decision("SPY", "BUY", Decimal(2)),),
        recorded_orders=(Decision("SPY", "BUY", Decimal(2)),),
    )
    kept = _save(tmp_path, result, None, result.differences, shadow=tmp_path / "other")
    listed = client.get("/replays").text
    assert ids[0] in listed and "shadow" in listed
    page = client.get(f"/replays/{kept.stem}").text
    assert "plan: SELL TLT 50.00 (recorded only)" in page
    assert page.count('class="differs"') == 1  # TLT: recorded, not replayed
    assert "<td>$100.00</td>" in page and "<td>2</td>" in page  # dollars; shares, not dollars
    assert client.get("/replays/replay-x..y").status_code == 404


def test_a_signal_naming_the_file_as_the_config_lists_it_is_the_files(
    started: tuple[TestClient, list[str], list[str]], tmp_path: Path
) -> None:
    """The strategy service names each file as the allocation config lists it (`1-KMLM.clj`),
    the hand-built history by its base name: the pages find both."""
    client, _, _ = started
    sign_in(client)
    made = workflows.Workflow().started().signal()
    later = timedelta(days=400)  # after every run of the history: the files' latest signal
    events: list[Event] = []
    for event in made.events:
        update: dict[str, object] = {"occurred_at": event.occurred_at + later}
        if isinstance(event, SignalGenerated):
            update["strategies"] = tuple(
                s.model_copy(update={"strategy": f"{s.strategy}.clj"}) for s in event.strategies
            )
        events.append(event.model_copy(update=update))
    asyncio.run(record_all(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}", events))

    def latest_run() -> str | None:
        page = client.get("/strategies").text
        match = re.search(r'last signal [^(]*\(<a href="/workflows/([^"]+)"', page)
        return match.group(1) if match else None

    deadline = time.monotonic() + 30
    while latest_run() != made.id:
        assert time.monotonic() < deadline, "the renamed signal was not shown"
        time.sleep(0.2)
    assert made.id in client.get("/strategies/1-KMLM").text


async def record_all(url: str, events: list[Event]) -> None:
    store = SqlEventStore(url)
    try:
        for event in events:
            await record(store, event)
    finally:
        await store.close()

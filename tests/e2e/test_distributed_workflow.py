"""One trading day through four service processes, real RabbitMQ and PostgreSQL, the simulated
broker and an SMTP server on loopback: a trigger over HTTP completes the workflow and the email
arrives; with the execution service stopped, the deadline fails the run and says where."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import Cluster, sample_bars, smtp_settings
from tests.eventually import eventually
from tests.integration.notify.sinks import smtp_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="session")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_bars(tmp_path_factory.mktemp("sample-bars"))


async def test_a_trigger_over_http_completes_the_day_and_the_email_arrives(
    tmp_path: Path, bars: Path
) -> None:
    async with (
        smtp_server() as (port, mailbox),
        Cluster(tmp_path, bars, smtp_settings(port)) as cluster,
    ):
        await cluster.start_all()

        assert (await cluster.trigger(token=None)).status_code == 401
        assert (await cluster.trigger(token="wrong")).status_code == 401
        started = await cluster.trigger()
        assert started.status_code == 202, started.text
        workflow_id = started.json()["id"]

        view = await cluster.finished(workflow_id)
        assert view["status"] == "completed", view["failure_reason"]
        again = await cluster.trigger()
        assert again.status_code == 200
        assert again.json()["id"] == workflow_id

        events = await cluster.events(workflow_id)
        types = [event.event_type for event in events]
        for expected in ("SignalGenerated", "RebalancePlanned", "TradeExecuted"):
            assert expected in types
        assert types[0] == "WorkflowStarted"
        assert "WorkflowCompleted" in types
        seen: set[str] = set()
        for event in events:  # causal order: every cause is recorded before its effect
            assert event.causation_id is None or event.causation_id in seen, event
            seen.add(str(event.event_id))

        await eventually(lambda: len(mailbox.messages) == 1, timeout_s=30)
        await asyncio.sleep(1)  # a second email would arrive by now
        assert len(mailbox.messages) == 1
        message = mailbox.messages[0]
        assert message["Subject"].startswith("[SUCCESS]")
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        plan = next(e for e in events if e.event_type == "RebalancePlanned")
        bought = next(item.symbol for item in plan.items if item.action == "BUY")
        for part in (text, html):
            assert bought in part
            assert "1-KMLM.clj" in part
            assert "{{" not in part

        # Positions afterwards match the target within 1 % of PV (plus one share's price)
        # (docs/trading-rules.md, Plan invariants, item 4).
        account = json.loads(
            (await cluster.alchemiser("broker", "account", "--format", "json")).stdout
        )
        positions = json.loads(
            (await cluster.alchemiser("broker", "positions", "--format", "json")).stdout
        )
        equity = Decimal(account["equity"])
        held = {row["symbol"]: Decimal(row["market_value"]) / equity for row in positions}
        signal = next(e for e in events if e.event_type == "SignalGenerated")
        targets = signal.consolidated_portfolio.target_allocations
        assert set(held) == set(targets)
        for symbol, weight in targets.items():
            assert abs(held[symbol] - Decimal("0.99") * weight) < Decimal("0.01"), symbol

        async with httpx.AsyncClient(base_url=cluster.url("strategy")) as client:
            why = (await client.get(f"/v1/workflows/{workflow_id}/why/{bought}")).json()
        assert why["action"] == "BUY"
        assert why["strategies"] and why["strategies"][0]["decision_path"]
        assert why["causation"][-1]["event_type"] == "WorkflowStarted"


async def test_with_execution_stopped_the_deadline_fails_the_run_and_the_email_says_where(
    tmp_path: Path, bars: Path
) -> None:
    async with smtp_server() as (port, mailbox):
        settings = smtp_settings(port, ALCHEMISER_WORKFLOW_DEADLINE_S="15")
        async with Cluster(tmp_path, bars, settings) as cluster:
            await cluster.start_all(["strategy", "portfolio", "notify"])
            workflow_id = (await cluster.trigger()).json()["id"]

            view = await cluster.finished(workflow_id, timeout_s=60)
            assert view["status"] == "failed"
            assert "execution service did not answer" in view["failure_reason"]

            await eventually(lambda: len(mailbox.messages) == 1, timeout_s=30)
            message = mailbox.messages[0]
            assert message["Subject"].startswith("[FAILURE]")
            text = message.get_body(preferencelist=("plain",)).get_content()
            assert "trade_execution" in text
            assert "execution service did not answer" in text

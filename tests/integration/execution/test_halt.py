"""The kill switch in the simulated world (docs/trading-rules.md, Halt): a halt cancels this
system's resting orders and records it, a running workflow of a halted account sends nothing new
and ends naming the halt, and a halt's liquidation sells everything through the normal plan and
execution path while the account is halted; the halt is announced on every channel."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from services.embedded import EmbeddedSystem
from services.strategy.halt import halt_trading
from services.strategy.trigger import TradingHaltedError, start_workflow
from shared import market_clock
from shared.broker.factory import broker_for
from shared.broker.models import OrderRequest, OrderStatus, OrderType
from shared.broker.request_budget import BudgetShare
from shared.broker.simulated.broker import SimulatedBroker
from shared.events import (
    NotificationSent,
    TradeExecuted,
    WorkflowConfiguration,
    WorkflowStarted,
)
from shared.events.control import HaltOrdersCancelled
from shared.eventstore.store import SqlEventStore
from shared.marketdata.barstore import BarStore
from shared.settings import Settings
from shared.trading import Side
from tests.eventually import eventually
from tests.integration.execution.world import (
    CLOSED_SIM_NOW,
    CLOSES,
    OPEN_SIM_NOW,
    SESSIONS,
    bars,
    fast_settings,
    message,
    migrated_sqlite,
    plan_event,
    running_execution,
)
from tests.integration.notify.sinks import http_server, smtp_server
from tests.unit.marketdata.tables import bars_table

pytestmark = pytest.mark.integration

REASON = "broker outage drill"


def now_of(settings: Settings) -> dt.datetime:
    return market_clock.market_now(settings, SESSIONS[-1])


async def types_of(store: SqlEventStore, workflow_id: str) -> list[str]:
    return [recorded.event.event_type for recorded in await store.read_correlation(workflow_id)]


async def test_a_halt_cancels_the_resting_orders_and_the_workflow_sends_nothing_new(
    tmp_path: Path,
) -> None:
    settings = fast_settings(await migrated_sqlite(tmp_path), tmp_path, sim_now=CLOSED_SIM_NOW)
    workflow_id = str(uuid.uuid4())
    async with running_execution(settings) as running:
        await running.deliver(plan_event(workflow_id, [("SPY", "BUY", "5000", "0.05")]))

        async def resting() -> list[str]:
            return [o.client_order_id for o in await running.broker().get_open_orders()]

        resting_ids = await eventually(resting)
        halted = await halt_trading(
            running.store,
            settings,
            now=now_of(settings),
            account_id="default",
            reason=REASON,
            requested_by="test",
            liquidate=False,
        )
        delivered = message(halted)
        await running.consumer.handle_message(delivered)
        await running.consumer.handle_message(delivered)  # redelivered: nothing more happens

        assert await resting() == []
        reports = [
            r.event
            for r in await running.store.read_correlation(halted.correlation_id)
            if isinstance(r.event, HaltOrdersCancelled)
        ]
        assert [(r.account_id, r.cancelled, r.failed) for r in reports] == [
            ("default", tuple(resting_ids), ())
        ]
        await eventually(lambda: running.finished(workflow_id))
        history = [r.event for r in await running.store.read_correlation(workflow_id)]
    assert [e.event_type for e in history].count("OrderRequested") == 1
    (executed,) = [e for e in history if isinstance(e, TradeExecuted)]
    assert not executed.success
    (result,) = executed.execution_data.orders
    assert result.error_message is not None
    assert (
        result.error_message
        == f"not placed: halted since {halted.occurred_at.isoformat()}: {REASON}; resume with "
        "`alchemiser resume`"
    )
    assert history[-1].event_type == "WorkflowFailed"


async def test_a_halted_account_sends_no_order_but_its_liquidation_does(tmp_path: Path) -> None:
    settings = fast_settings(await migrated_sqlite(tmp_path), tmp_path, sim_now=OPEN_SIM_NOW)
    daily, liquidation = str(uuid.uuid4()), str(uuid.uuid4())
    async with running_execution(settings) as running:
        await halt_trading(
            running.store,
            settings,
            now=now_of(settings),
            account_id="default",
            reason=REASON,
            requested_by="test",
            liquidate=False,
        )
        started = WorkflowStarted(
            correlation_id=liquidation,
            account_id="default",
            occurred_at=dt.datetime.now(dt.UTC),
            source="strategy",
            workflow_type="liquidation",
            requested_by="test",
            configuration=WorkflowConfiguration(live_trading=False),
            trading_date=SESSIONS[-1],
            force=True,
            idempotency_key=f"liquidation:test:{liquidation}",
        )
        await running.store.append(f"liquidation/{liquidation}", 0, [started])
        await running.deliver(plan_event(daily, [("SPY", "BUY", "5000", "0.05")]))
        await running.deliver(plan_event(liquidation, [("QQQ", "BUY", "5000", "0.05")]))
        await eventually(lambda: running.finished(daily))
        await eventually(lambda: running.finished(liquidation))
        refused = await running.event_types(daily)
        allowed = await running.event_types(liquidation)
    assert "OrderRequested" not in refused
    assert refused[-1] == "WorkflowFailed"
    assert "OrderFilled" in allowed
    assert allowed[-1] == "WorkflowCompleted"


async def test_halt_with_liquidation_sells_everything_and_is_announced(tmp_path: Path) -> None:
    async with (
        smtp_server() as (smtp_port, mailbox),
        http_server() as (webhook_url, webhook),
        http_server() as (apprise_http, apprise),
    ):
        url = await migrated_sqlite(tmp_path)
        BarStore(tmp_path).write(bars_table(SESSIONS, CLOSES), synthetic=False, source="test")
        settings = fast_settings(
            url,
            tmp_path,
            sim_now=OPEN_SIM_NOW,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            smtp_starttls=False,
            email_from="alchemiser@example.com",
            email_to="owner@example.com",
            webhook_url=webhook_url,
            notify_urls=apprise_http.replace("http://", "json://"),
        )
        broker = broker_for(settings, "default", share=BudgetShare.EXECUTION, bars=bars())
        assert isinstance(broker, SimulatedBroker)
        await broker.open_account(
            Decimal("1000"),
            {"SPY": (Decimal("10"), Decimal("600")), "TLT": (Decimal("3.5"), Decimal("93"))},
        )
        resting = await broker.submit_order(
            OrderRequest(
                symbol="GLD",
                side=Side.BUY,
                qty=Decimal(1),
                order_type=OrderType.LIMIT,
                limit_price=Decimal("1.00"),
                client_order_id="alc:resting-before-the-halt",
            )
        )
        system = EmbeddedSystem(settings, ("strategy", "portfolio", "execution", "notify"))
        try:
            await system.start()
            halted = await halt_trading(
                system.store,
                settings,
                now=now_of(settings),
                account_id=None,
                reason=REASON,
                requested_by="test",
                liquidate=True,
            )
            system.relay.wake()
            assert halted.accounts == ("default",)
            assert halted.liquidation_refused is None
            workflow_id = halted.liquidations["default"]

            async def all_notified() -> bool:
                history = await system.store.read_correlation(workflow_id)
                control = await system.store.read_correlation(halted.correlation_id)
                sent = [r.event for r in [*history, *control]]
                return sum(isinstance(event, NotificationSent) for event in sent) == 6

            await eventually(all_notified, timeout_s=30)
            with pytest.raises(TradingHaltedError) as refused:
                await start_workflow(
                    system.store,
                    settings,
                    now=now_of(settings),
                    force=True,
                    account_id="default",
                    requested_by="test",
                )
            types = await types_of(system.store, workflow_id)
            control = await types_of(system.store, halted.correlation_id)
        finally:
            await system.stop()
        after = await broker.get_order(resting.order_id)
        assert after is not None and after.status is OrderStatus.CANCELED
        assert await broker.get_positions() == []
        cash = (await broker.get_account()).cash
        await broker.close()
    assert str(refused.value) == (
        f"halted since {halted.occurred_at.isoformat()}: {REASON}; resume with `alchemiser resume`"
    )
    assert types[0] == "WorkflowStarted" and "SignalGenerated" not in types
    assert types.count("OrderFilled") >= 2 and "WorkflowCompleted" in types
    assert cash > Decimal("1000") + 10 * 590
    assert control.count("HaltOrdersCancelled") == 1
    subjects = [message["Subject"] for message in mailbox.messages]
    assert "[HALTED] Alchemiser - PAPER trading halted for every account" in subjects
    assert any("Trading is halted for every account" in body["text"] for body in webhook.bodies)
    assert any(REASON in body["message"] for body in apprise.bodies)

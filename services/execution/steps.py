"""Execution's broker shell for one account: runs the step a timer asks for by calling the pure
rules (`chain.decide` for an order chain, `machine` for the workflow), performing each broker
command they ask for and feeding the answer back, until they ask for nothing more.

A step never writes: it returns a `StepResult` (events, new state, next timers) that the
executor commits in one transaction together with the deletion of the timer that fired. So a
step may run twice (a timer fires at least once); it stays safe because every broker action is
keyed by the client order id and every step starts from the broker's answer, not from memory.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import structlog

from services.execution import sizing
from services.execution.assets import AssetCache
from services.execution.chain import (
    BuyingPowerRead,
    CancelAnswered,
    CancelOrder,
    CloseAnswered,
    CloseFound,
    ClosePosition,
    Command,
    FindClose,
    LastTradeRead,
    LookUpOrder,
    Observation,
    OrderLookedUp,
    OrderRead,
    QuoteRead,
    ReadBuyingPower,
    ReadLastTrade,
    ReadOrder,
    ReadQuote,
    ReadSizingFacts,
    SizingFactsRead,
    SubmitAnswered,
    SubmitOrder,
    TimerFired,
    decide,
)
from services.execution.machine import (
    WORKFLOW_SCOPE,
    StepResult,
    TimerKind,
    advance,
    after_settle_check,
    after_stale_check,
)
from services.execution.policy import ExecutionPolicy
from services.execution.state import RequestReason, WorkflowExecution, WorkflowPhase
from shared.broker.errors import BrokerError
from shared.broker.models import Order, OrderType
from shared.broker.port import Broker
from shared.events import CLIENT_ORDER_ID_PREFIX, Event
from shared.faults import FaultInjector, installed
from shared.settings import Settings
from shared.trading import Quote, Side

log = structlog.get_logger(__name__)

AFTER_SUBMIT = "after_submit"
"""The fault point between the broker's acceptance of an order and the commit that records it:
the worst moment to die, which the restart must recover from without a second order."""


class ChainSteps:
    """Runs the steps of one account's chains against its broker."""

    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
        assets: AssetCache | None = None,
        faults: FaultInjector | None = None,
        policy: ExecutionPolicy | None = None,
        halt: str | None = None,
    ) -> None:
        """`halt`: why the account is halted, read when the step began; its chains then send
        nothing new (`chain.decide`)."""
        self._broker = broker
        self._halt = halt
        self._faults = faults if faults is not None else installed()
        self._policy = policy if policy is not None else ExecutionPolicy.from_settings(settings)
        self._clock = clock
        self._jitter = jitter
        self._assets = assets if assets is not None else AssetCache(settings.asset_cache_s, clock)
        self._looked_up: dict[str, Order | None] = {}

    # ------------------------------------------------------------------ dispatch

    async def fire(
        self, state: WorkflowExecution, chain_key: str, kind: TimerKind, payload: dict[str, str]
    ) -> StepResult:
        """Run the step a timer asks for; a timer that no longer matches the state (its work
        was done by an earlier firing) records nothing."""
        now = self._clock()
        if state.phase is WorkflowPhase.DONE:
            return StepResult(state)
        if chain_key == WORKFLOW_SCOPE:
            if kind is TimerKind.STALE_CHECK and state.phase is WorkflowPhase.CANCELLING_STALE:
                return await self.stale_check(state, now)
            if kind is TimerKind.BP_CHECK and state.phase is WorkflowPhase.SETTLING:
                return await self.settle_check(state, now)
            return StepResult(state)
        stepped = await self.step_chain(state, chain_key, kind, payload, now)
        return stepped.then(advance(stepped.state, now, self._policy))

    async def step_chain(
        self,
        state: WorkflowExecution,
        chain_key: str,
        kind: TimerKind,
        payload: dict[str, str],
        now: datetime,
    ) -> StepResult:
        """One chain's step without the workflow's phase change (`advance`), so the executor
        can run independent chains side by side and advance once."""
        chain = state.chain(chain_key)
        if chain is None:
            return StepResult(state)
        reason: RequestReason = payload.get("reason", "fallback")  # type: ignore[assignment]
        observation: Observation = TimerFired(kind, reason)
        events: list[Event] = []
        while True:
            decision = decide(state, chain, observation, now, self._policy, halt=self._halt)
            chain = decision.chain
            events.extend(decision.events)
            for note in decision.notes:
                log.warning(note.message, error=note.error)
            if decision.command is None:
                return StepResult(state.with_chain(chain), tuple(events), decision.timers)
            observation = await self._perform(decision.command)
            now = self._clock()  # the broker took its time; the close guard needs the true now

    async def look_up_ahead(self, client_order_id: str) -> None:
        """Look an intent up ahead of its submit step (the executor does a batch's look-ups side
        by side, then submits one by one); the submit step uses the answer once."""
        self._looked_up[client_order_id] = await self._look_up(client_order_id)

    # ------------------------------------------------------------------ workflow steps

    async def stale_check(self, state: WorkflowExecution, now: datetime) -> StepResult:
        ended = True
        for stale in state.stale_cancelled:
            try:
                order = await self._broker.get_order(stale.broker_order_id)
            except BrokerError:
                ended = False
                continue
            if order is not None and not order.is_terminal:
                ended = False
        return after_stale_check(state, ended, now, self._policy)

    async def settle_check(self, state: WorkflowExecution, now: datetime) -> StepResult:
        buying_power = await self._spendable()
        if buying_power is not None and buying_power < state.released:
            log.info(
                "buying power below released proceeds",
                buying_power=str(buying_power),
                released=str(state.released),
                check=state.settle_checks + 1,
            )
        return after_settle_check(state, buying_power, now, self._policy)

    # ------------------------------------------------------------------ broker commands

    async def _perform(self, command: Command) -> Observation:
        """Do what the rules asked at the broker and answer with what it said; a failed read
        is answered as such, never raised."""
        match command:
            case ReadQuote():
                return QuoteRead(command, await self._quote(command.symbol))
            case ReadLastTrade():
                try:
                    trade = await self._broker.get_latest_trade(command.symbol)
                except BrokerError:
                    trade = None
                return LastTradeRead(command, trade.price if trade is not None else None)
            case ReadSizingFacts():
                asset = await self._assets.get(self._broker, command.symbol)
                if not command.with_position:
                    return SizingFactsRead(command, asset)
                try:
                    position = await self._broker.get_position(command.symbol)
                except BrokerError:
                    return SizingFactsRead(command, asset, position_failed=True)
                return SizingFactsRead(command, asset, position)
            case ReadBuyingPower():
                quote = await self._quote(command.symbol)
                return BuyingPowerRead(command, quote, await self._spendable())
            case LookUpOrder():
                if command.failure is None and command.client_order_id in self._looked_up:
                    found = self._looked_up.pop(command.client_order_id)
                else:
                    found = await self._look_up(command.client_order_id)
                return OrderLookedUp(command, found, self._jitter())
            case SubmitOrder():
                try:
                    placed = await self._broker.submit_order(command.request)
                except BrokerError as error:
                    return SubmitAnswered(command, error=error)
                self._faults.reached(AFTER_SUBMIT)
                return SubmitAnswered(command, placed)
            case FindClose():
                try:
                    orders = await self._broker.get_orders(command.symbol, command.since)
                except BrokerError as error:
                    return CloseFound(command, error=error, jitter=self._jitter())
                made = next((order for order in orders if is_close_order(order)), None)
                return CloseFound(command, made, jitter=self._jitter())
            case ClosePosition():
                try:
                    closing = await self._broker.close_position(command.symbol)
                except BrokerError as error:
                    return CloseAnswered(command, error=error)
                self._faults.reached(AFTER_SUBMIT)
                return CloseAnswered(command, closing)
            case ReadOrder():
                try:
                    return OrderRead(command, await self._broker.get_order(command.broker_order_id))
                except BrokerError as error:
                    return OrderRead(command, error=error)
            case CancelOrder():
                try:
                    cancelled = await self._broker.cancel_order(command.broker_order_id)
                except BrokerError as error:
                    return CancelAnswered(command, error=error)
                return CancelAnswered(command, cancelled)

    async def _spendable(self) -> Decimal | None:
        """The buying power a BUY may use; None when the account read failed."""
        try:
            account = await self._broker.get_account()
        except BrokerError:
            return None
        return sizing.spendable_buying_power(
            account.buying_power, account.daytrading_buying_power, account.pattern_day_trader
        )

    async def _quote(self, symbol: str) -> Quote | None:
        try:
            return await self._broker.get_latest_quote(symbol)
        except BrokerError:
            return None

    async def _look_up(self, client_order_id: str) -> Order | None:
        try:
            return await self._broker.get_order_by_client_id(client_order_id)
        except BrokerError:
            return None


def is_close_order(order: Order) -> bool:
    """An order a close-position call made: a market SELL under an id that is not ours (the
    broker chooses it)."""
    return (
        order.side is Side.SELL
        and order.order_type is OrderType.MARKET
        and not order.client_order_id.startswith(CLIENT_ORDER_ID_PREFIX)
    )

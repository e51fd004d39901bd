"""The chain half of the execution state machine (trading spec §3.16): one method per timer
kind, each reading the broker and returning what to record.

A step never writes: it returns a `StepResult` (events, new state, next timers) that the
executor commits in one transaction together with the deletion of the timer that fired. So a
step may run twice (a timer fires at least once); it stays safe because every broker action is
keyed by the client order id and every step starts from the broker's answer, not from memory.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog

from services.execution import pricing, sizing
from services.execution.assets import AssetCache
from services.execution.machine import (
    QUOTE_ATTEMPTS,
    QUOTE_PAUSE_S,
    WORKFLOW_SCOPE,
    Emitter,
    StepResult,
    TimerKind,
    TimerRequest,
    advance,
    after_settle_check,
    backoff_s,
    default_jitter,
    doubling_wait_s,
    open_phase,
    stale_wait_over,
)
from services.execution.state import (
    AttemptKind,
    AttemptRecord,
    CancelPurpose,
    Chain,
    ChainState,
    OrderIntent,
    RequestReason,
    WorkflowExecution,
    WorkflowPhase,
)
from shared.broker.errors import (
    BrokerError,
    InsufficientQtyAvailableError,
    RateLimitedError,
)
from shared.broker.models import (
    CancelOutcome,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
)
from shared.broker.port import Broker
from shared.events import (
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderRequested,
    OrderSubmitted,
    client_order_id,
)
from shared.settings import Settings
from shared.trading import Quote, Side

log = structlog.get_logger(__name__)

CRASH_POINT_VARIABLE = "ALCHEMISER_TEST_CRASH_AT"
"""TEST-ONLY: names a crash point (`after_submit`) at which the process SIGKILLs itself, so the
chaos tests can kill execution between the broker's acceptance and the commit that records it.
Never set it outside tests."""


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_POINT_VARIABLE) == name:
        log.warning("test crash point reached; killing the process", crash_point=name)
        os.kill(os.getpid(), signal.SIGKILL)


class ChainSteps:
    """Runs the steps of one account's chains against its broker."""

    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = default_jitter,
        assets: AssetCache | None = None,
    ) -> None:
        self._broker = broker
        self._settings = settings
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
        return stepped.then(advance(stepped.state, now, self._settings))

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
        if chain is None or state.phase is WorkflowPhase.DONE:
            return StepResult(state)
        expected = {
            TimerKind.PRICE: ChainState.PRICING,
            TimerKind.MARKET_BP: ChainState.PRICING,
            TimerKind.SUBMIT: ChainState.REQUESTED,
            TimerKind.POLL: ChainState.WORKING,
            TimerKind.CANCEL_CHECK: ChainState.CANCELLING,
        }
        if chain.state is not expected[kind]:
            return StepResult(state)
        emitter = Emitter(state, now)
        if kind is TimerKind.PRICE:
            chain, timers = await self.price(chain, emitter, now)
        elif kind is TimerKind.MARKET_BP:
            reason: RequestReason = payload.get("reason", "fallback")  # type: ignore[assignment]
            chain, timers = await self.market_path(chain, emitter, now, reason)
        elif kind is TimerKind.SUBMIT:
            chain, timers = await self.submit(chain, emitter, now)
        elif kind is TimerKind.POLL:
            chain, timers = await self.poll(chain, emitter, now)
        else:
            chain, timers = await self.cancel_check(chain, emitter, now)
        if chain.ended and chain.ended_at is None:
            chain = replace(chain, ended_at=now)
        return StepResult(state.with_chain(chain), tuple(emitter.events), timers)

    async def look_up(self, client_order_id_: str) -> None:
        """Look an intent up ahead of its submit step (the executor does a batch's lookups side
        by side, then submits one by one); the submit step uses the answer once."""
        self._looked_up[client_order_id_] = await self._lookup(client_order_id_)

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
        if stale_wait_over(state, ended, now):
            return open_phase(state, Side.SELL, now, self._settings)
        return StepResult(
            state,
            timers=(
                TimerRequest(
                    WORKFLOW_SCOPE,
                    TimerKind.STALE_CHECK,
                    now + timedelta(seconds=self._settings.exec_poll_s),
                ),
            ),
        )

    async def settle_check(self, state: WorkflowExecution, now: datetime) -> StepResult:
        try:
            buying_power: Decimal | None = (await self._broker.get_account()).buying_power
        except BrokerError:
            buying_power = None
        if buying_power is not None and buying_power < state.released:
            log.info(
                "buying power below released proceeds",
                buying_power=str(buying_power),
                released=str(state.released),
                check=state.settle_checks + 1,
            )
        return after_settle_check(state, buying_power, now, self._settings)

    # ------------------------------------------------------------------ pricing (§3.3-3.6)

    async def price(
        self, chain: Chain, emitter: Emitter, now: datetime
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        quote = await self._quote(chain.symbol)
        attempts = chain.quote_attempts + 1
        started = chain.pricing_started_at or now
        pause_s = QUOTE_PAUSE_S * 2 ** (attempts - 1)
        waited_s = (now - started).total_seconds()
        if (
            quote is None
            and attempts < QUOTE_ATTEMPTS
            and waited_s + pause_s <= self._settings.exec_quote_wait_s
        ):
            return replace(chain, quote_attempts=attempts, pricing_started_at=started), (
                TimerRequest(chain.key, TimerKind.PRICE, now + timedelta(seconds=pause_s)),
            )
        asset = await self._asset(chain.symbol)
        position_qty, qty_available = await self._holding(chain)
        mid = quote.mid() if quote is not None else None
        sized = sizing.size_order(
            side=chain.side,
            trade_amount=chain.trade_amount,
            liquidation=chain.liquidation,
            price=mid,
            position_qty=position_qty,
            qty_available=qty_available,
            asset=asset,
            min_notional_usd=self._settings.exec_min_notional_usd,
        )
        chain = replace(
            chain,
            quote_attempts=attempts,
            quote=quote,
            fractionable=asset is not None and asset.fractionable,
            asset_known=asset is not None,
        )
        if sized.outcome is sizing.SizingOutcome.SKIPPED:
            return replace(chain, state=ChainState.SKIPPED, error_message=sized.reason), ()
        if sized.outcome is sizing.SizingOutcome.FAILED:
            return (
                replace(
                    chain,
                    state=ChainState.FAILED,
                    error_message=f"{sized.reason} for {chain.symbol}: no usable quote",
                ),
                (),
            )
        chain = replace(chain, requested_qty=sized.qty)
        checked = sizing.preflight(chain.symbol, sized.qty, asset)
        if not checked.valid:
            emitter.emit(
                OrderRejected,
                emitter.state.plan_event_id,
                **self._order_fields(chain, emitter.state.workflow_id, 1, None),
                reason=checked.message or "invalid order",
                broker_code=checked.code.value if checked.code else None,
                retryable=False,
            )
            return replace(chain, state=ChainState.FAILED, error_message=checked.message), ()
        chain = replace(chain, requested_qty=checked.qty)
        limit = (
            pricing.initial_limit_price(chain.side, quote, checked.qty)
            if quote is not None
            else None
        )
        if limit is None or limit <= 0:
            return await self.market_path(chain, emitter, now, "fallback")
        chain = replace(chain, anchor=limit, price_history=(limit,))
        return self._request(chain, emitter, now, "limit", checked.qty, limit, "initial")

    async def market_path(
        self, chain: Chain, emitter: Emitter, now: datetime, reason: RequestReason
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """§3.9: validate, check buying power for a BUY (1, 2, 4, 8 s apart), then a MARKET
        intent for what the chain still lacks."""
        remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
        asset = sizing.AssetInfo(True, chain.fractionable) if chain.asset_known else None
        checked = sizing.preflight(chain.symbol, remaining, asset)
        if not checked.valid:
            return self._end_without_order(chain, checked.message or "invalid order"), ()
        if chain.side is Side.BUY:
            quote = await self._quote(chain.symbol) or chain.quote
            mid = quote.mid() if quote is not None else None
            try:
                buying_power: Decimal | None = (await self._broker.get_account()).buying_power
            except BrokerError:
                buying_power = None
            shortfall = (
                sizing.market_buy_shortfall(chain.symbol, checked.qty, mid, buying_power)
                if buying_power is not None
                else None
            )
            if shortfall is not None:
                checks = chain.bp_checks + 1
                if checks >= self._settings.exec_market_bp_checks:
                    return self._end_without_order(replace(chain, bp_checks=checks), shortfall), ()
                return (
                    replace(chain, state=ChainState.PRICING, bp_checks=checks),
                    (
                        TimerRequest(
                            chain.key,
                            TimerKind.MARKET_BP,
                            now + timedelta(seconds=doubling_wait_s(checks)),
                            {"reason": reason},
                        ),
                    ),
                )
        return self._request(chain, emitter, now, "market", checked.qty, None, reason)

    # ------------------------------------------------------------------ submission

    async def submit(
        self, chain: Chain, emitter: Emitter, now: datetime
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """Send the recorded intent, looking it up by client order id first: after a crash or a
        lost answer the broker may already hold it, and it must never be placed twice."""
        order = chain.order
        assert order is not None, "a requested chain has an intent"
        if order.client_order_id in self._looked_up:
            found = self._looked_up.pop(order.client_order_id)
        else:
            found = await self._lookup(order.client_order_id)
        if found is not None:
            return self._accepted(chain, emitter, now, found)
        request = OrderRequest(
            symbol=chain.symbol,
            side=chain.side,
            qty=order.qty,
            order_type=OrderType.MARKET if order.kind == "market" else OrderType.LIMIT,
            client_order_id=order.client_order_id,
            limit_price=order.limit_price,
        )
        try:
            placed = await self._broker.submit_order(request)
        except InsufficientQtyAvailableError as error:
            return self._insufficient_qty(chain, emitter, now, error)
        except BrokerError as error:
            if not error.retryable:
                return await self._rejected(chain, emitter, now, error.message, error.code, False)
            found = await self._lookup(order.client_order_id)
            if found is not None:
                return self._accepted(chain, emitter, now, found)
            tries = order.submit_tries + 1
            if tries > self._settings.broker_retries:
                return await self._rejected(
                    chain,
                    emitter,
                    now,
                    f"{error.message} (gave up after {tries} submissions)",
                    error.code,
                    True,
                )
            retry_after = error.retry_after_s if isinstance(error, RateLimitedError) else None
            wait_s = backoff_s(tries, retry_after, self._jitter)
            return replace(chain, order=replace(order, submit_tries=tries)), (
                TimerRequest(chain.key, TimerKind.SUBMIT, now + timedelta(seconds=wait_s)),
            )
        crash_point("after_submit")
        return self._accepted(chain, emitter, now, placed)

    def _accepted(
        self, chain: Chain, emitter: Emitter, now: datetime, placed: Order
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        order = chain.order
        assert order is not None
        if placed.status is OrderStatus.REJECTED and placed.filled_qty == 0:
            return self._rejected_sync(chain, emitter, now, placed)
        emitter.emit(
            OrderSubmitted,
            order.requested_event_id,
            **self._order_fields(chain, emitter.state.workflow_id, order.attempt, placed.order_id),
            status=placed.broker_status,
        )
        order = replace(order, broker_order_id=placed.order_id, placed_at=now)
        chain, timers = self._observe(
            replace(chain, state=ChainState.WORKING, order=order), emitter, now, placed
        )
        if chain.state is ChainState.WORKING and not timers:
            timers = (self._next_poll(chain, now),)
        return chain, timers

    def _rejected_sync(
        self, chain: Chain, emitter: Emitter, now: datetime, placed: Order
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        order = chain.order
        assert order is not None
        reason = f"order {order.client_order_id} rejected by the broker ({placed.broker_status})"
        emitter.emit(
            OrderRejected,
            order.requested_event_id,
            **self._order_fields(chain, emitter.state.workflow_id, order.attempt, placed.order_id),
            reason=reason,
            broker_code=None,
            retryable=False,
        )
        chain = self._close(
            replace(chain, order=replace(order, broker_order_id=placed.order_id)), "rejected"
        )
        return self._after_rejection(chain, emitter, now, order.kind, reason)

    async def _rejected(
        self,
        chain: Chain,
        emitter: Emitter,
        now: datetime,
        reason: str,
        code: str | None,
        retryable: bool,
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """§3.12: a refusal is an `OrderRejected`; a limit falls back to the market path, a
        market order ends the chain."""
        order = chain.order
        assert order is not None
        emitter.emit(
            OrderRejected,
            order.requested_event_id,
            **self._order_fields(chain, emitter.state.workflow_id, order.attempt, None),
            reason=reason,
            broker_code=code,
            retryable=retryable,
        )
        chain = self._close(chain, "rejected")
        if order.kind != "market":
            return await self.market_path(chain, emitter, now, "fallback")
        return self._end(chain, reason), ()

    def _after_rejection(
        self, chain: Chain, emitter: Emitter, now: datetime, kind: AttemptKind, reason: str
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        if kind != "market":
            remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
            return self._request(chain, emitter, now, "market", remaining, None, "fallback")
        return self._end(chain, reason), ()

    def _insufficient_qty(
        self, chain: Chain, emitter: Emitter, now: datetime, error: InsufficientQtyAvailableError
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """§3.7 step 4.5: resubmit once with the available quantity; none left → complete."""
        order = chain.order
        assert order is not None
        emitter.emit(
            OrderRejected,
            order.requested_event_id,
            **self._order_fields(chain, emitter.state.workflow_id, order.attempt, None),
            reason=error.message,
            broker_code=error.code,
            retryable=False,
        )
        chain = self._close(chain, "rejected")
        available = error.available_qty
        if available is not None and available <= pricing.EXHAUSTED_QTY:
            return self._end(chain, error.message), ()
        if available is None or chain.qty_retry_used:
            return self._end(chain, error.message), ()
        qty = sizing.truncate_quantity(available, chain.fractionable)
        if qty <= 0:
            return self._end(chain, error.message), ()
        chain = replace(chain, qty_retry_used=True)
        return self._request(chain, emitter, now, order.kind, qty, order.limit_price, order.reason)

    # ------------------------------------------------------------------ supervision (§3.7)

    async def poll(
        self, chain: Chain, emitter: Emitter, now: datetime
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        order = chain.order
        assert order is not None and order.broker_order_id is not None
        try:
            current = await self._broker.get_order(order.broker_order_id)
        except BrokerError:
            return chain, (self._next_poll(chain, now),)
        if current is None:
            return self._end(self._close(chain, "rejected"), "order not found at the broker"), ()
        chain, timers = self._observe(chain, emitter, now, current)
        if chain.state is not ChainState.WORKING or timers:
            return chain, timers
        order = chain.order
        assert order is not None and order.placed_at is not None
        age_s = (now - order.placed_at).total_seconds()
        if order.kind == "market":
            if age_s < self._settings.exec_final_wait_s:
                return chain, (self._next_poll(chain, now),)
            return await self._cancel_leftover(chain, emitter, now)
        if age_s < self._settings.exec_fill_wait_s:
            return chain, (self._next_poll(chain, now),)
        purpose: CancelPurpose = (
            "repeg" if chain.checks < self._settings.exec_max_repegs else "escalation"
        )
        chain = replace(chain, checks=chain.checks + 1)
        try:
            cancel = await self._broker.cancel_order(order.broker_order_id or "")
        except BrokerError as error:
            log.warning("cancel failed; the check is skipped", error=error.message)
            return chain, (self._next_poll(chain, now),)
        chain = replace(chain, cancel_purpose=purpose)
        if cancel.outcome is CancelOutcome.ALREADY_TERMINAL:
            return await self._confirm_cancel(chain, emitter, now)
        current = await self._read(order.broker_order_id or "")
        if current is not None and current.is_terminal:
            # Most cancels are confirmed at once; only an unconfirmed one waits on a timer.
            return await self._confirm_cancel(chain, emitter, now, current)
        deadline = now + timedelta(seconds=self._settings.exec_cancel_confirm_s)
        return replace(
            chain, state=ChainState.CANCELLING, cancel_purpose=purpose, cancel_deadline=deadline
        ), (self._cancel_timer(chain, now),)

    def _observe(
        self, chain: Chain, emitter: Emitter, now: datetime, current: Order
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """Record what the broker reports of the working order: filled → the chain is filled;
        ended by the broker with a remainder → a market order for it (§3.7 remainders)."""
        order = chain.order
        assert order is not None
        order = replace(
            order, filled_qty=current.filled_qty, filled_avg_price=current.filled_avg_price
        )
        chain = replace(chain, order=order)
        if current.status is OrderStatus.FILLED:
            self._filled_event(chain, emitter, current, complete=True)
            return self._end(self._close(chain, "filled"), None), ()
        if not current.is_terminal:
            return chain, ()
        if current.filled_qty > 0:
            self._filled_event(chain, emitter, current, complete=False)
        expired = current.broker_status.strip().lower() == "expired"
        if current.status is OrderStatus.CANCELED or expired:
            emitter.emit(
                OrderCancelled,
                order.requested_event_id,
                **self._order_fields(
                    chain, emitter.state.workflow_id, order.attempt, current.order_id
                ),
                filled_qty=current.filled_qty,
                reason="expired" if expired else "broker",
            )
        else:
            emitter.emit(
                OrderRejected,
                order.requested_event_id,
                **self._order_fields(
                    chain, emitter.state.workflow_id, order.attempt, current.order_id
                ),
                reason=f"order rejected by the broker ({current.broker_status})",
                retryable=False,
            )
        chain = self._close(chain, current.broker_status)
        return self._remainder(chain, emitter, now, order.kind, "residual")

    async def _cancel_leftover(
        self, chain: Chain, emitter: Emitter, now: datetime
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """§3.10 step 7: a market order still working after EXEC_FINAL_WAIT_S is cancelled; the
        chain is filled if anything filled, else failed. A cancel the broker did not take is
        tried again at the next poll: the chain never ends while its order may still work."""
        order = chain.order
        assert order is not None and order.broker_order_id is not None
        try:
            await self._broker.cancel_order(order.broker_order_id)
        except BrokerError as error:
            log.warning("leftover cancel failed; retried at the next poll", error=error.message)
            return chain, (self._next_poll(chain, now),)
        current = await self._read(order.broker_order_id)
        if current is not None:
            chain, ended = self._absorb_fills(chain, emitter, current)
            if ended is not None:
                return ended, ()
            assert chain.order is not None
            order = chain.order
        emitter.emit(
            OrderCancelled,
            order.requested_event_id,
            **self._order_fields(
                chain, emitter.state.workflow_id, order.attempt, order.broker_order_id
            ),
            filled_qty=order.filled_qty,
            reason="leftover",
        )
        return self._end(self._close(chain, "canceled"), None), ()

    async def cancel_check(
        self, chain: Chain, emitter: Emitter, now: datetime
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        order = chain.order
        assert order is not None and order.broker_order_id is not None
        current = await self._read(order.broker_order_id)
        if current is not None and current.is_terminal:
            return await self._confirm_cancel(chain, emitter, now, current)
        if chain.cancel_deadline is not None and now < chain.cancel_deadline:
            return chain, (self._cancel_timer(chain, now),)
        if chain.cancel_purpose == "repeg":
            log.warning("cancel not confirmed in time; the re-peg is skipped")
            return replace(chain, state=ChainState.WORKING, cancel_purpose=None), (
                self._next_poll(chain, now),
            )
        log.warning("cancel not confirmed in time; escalating to market anyway")
        if current is not None:
            order = replace(
                order, filled_qty=current.filled_qty, filled_avg_price=current.filled_avg_price
            )
        chain = self._close(replace(chain, order=order), "cancel_unconfirmed")
        return await self._market_remainder(chain, emitter, now, "escalation")

    async def _confirm_cancel(
        self, chain: Chain, emitter: Emitter, now: datetime, current: Order | None = None
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """The cancel is confirmed (or the order had already ended): "already filled" ends the
        chain filled with no re-peg; otherwise re-peg or escalate for the remainder."""
        order = chain.order
        assert order is not None and order.broker_order_id is not None
        if current is None:
            current = await self._read(order.broker_order_id)
        if current is None:
            return self._end(self._close(chain, "rejected"), "order not found at the broker"), ()
        chain, ended = self._absorb_fills(chain, emitter, current)
        if ended is not None:
            return ended, ()
        assert chain.order is not None
        order = chain.order
        purpose = chain.cancel_purpose or "escalation"
        emitter.emit(
            OrderCancelled,
            order.requested_event_id,
            **self._order_fields(chain, emitter.state.workflow_id, order.attempt, current.order_id),
            filled_qty=current.filled_qty,
            reason=purpose,
        )
        chain = self._close(replace(chain, cancel_purpose=None, cancel_deadline=None), "canceled")
        if purpose == "escalation":
            return await self._market_remainder(chain, emitter, now, "escalation")
        remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
        quote = await self._quote(chain.symbol)
        if self._negligible(chain, remaining, quote):
            return self._end(chain, None), ()
        price = (
            pricing.repeg_price(chain.side, chain.anchor, quote, chain.price_history)
            if quote is not None
            else None
        )
        if price is None:
            return await self._market_remainder(chain, emitter, now, "escalation")
        chain = replace(
            chain, quote=quote, anchor=price, price_history=(*chain.price_history, price)
        )
        return self._request(chain, emitter, now, "repeg", remaining, price, "repeg")

    def _remainder(
        self,
        chain: Chain,
        emitter: Emitter,
        now: datetime,
        kind: AttemptKind,
        reason: RequestReason,
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
        if kind == "market" or self._negligible(chain, remaining, chain.quote):
            return self._end(chain, "order ended at the broker unfilled"), ()
        return self._request(chain, emitter, now, "market", remaining, None, reason)

    async def _market_remainder(
        self, chain: Chain, emitter: Emitter, now: datetime, reason: RequestReason
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        remaining = sizing.remaining_quantity(chain.requested_qty, chain.filled_qty)
        if self._negligible(chain, remaining, chain.quote):
            return self._end(chain, None), ()
        return await self.market_path(chain, emitter, now, reason)

    # ------------------------------------------------------------------ chain bookkeeping

    def _request(
        self,
        chain: Chain,
        emitter: Emitter,
        now: datetime,
        kind: AttemptKind,
        qty: Decimal,
        limit_price: Decimal | None,
        reason: RequestReason,
    ) -> tuple[Chain, tuple[TimerRequest, ...]]:
        """Intent first (§3.16): record `OrderRequested` under the next client order id; the
        broker is called by the `submit` timer after this commits."""
        previous = chain.order
        attempt = previous.attempt + 1 if previous is not None else 1
        workflow_id = emitter.state.workflow_id
        quote = chain.quote
        event = emitter.emit(
            OrderRequested,
            previous.requested_event_id if previous is not None else emitter.state.plan_event_id,
            **self._order_fields(chain, workflow_id, attempt, None),
            qty=qty,
            order_type="MARKET" if kind == "market" else "LIMIT",
            limit_price=limit_price if kind != "market" else None,
            reason=reason,
            quote=quote,
        )
        intent = OrderIntent(
            client_order_id=client_order_id(
                workflow_id, chain.symbol, chain.side, chain.side, attempt
            ),
            attempt=attempt,
            kind=kind,
            qty=qty,
            limit_price=limit_price if kind != "market" else None,
            reason=reason,
            requested_event_id=str(event.event_id),
        )
        return replace(chain, state=ChainState.REQUESTED, order=intent), (
            TimerRequest(chain.key, TimerKind.SUBMIT, now),
        )

    def _close(self, chain: Chain, status: str) -> Chain:
        """Move the current order's fill into the chain's totals and its record into attempts;
        the order stays as the chain's last one for reporting."""
        order = chain.order
        if order is None:
            return chain
        value = (
            order.filled_qty * order.filled_avg_price
            if order.filled_avg_price is not None
            else Decimal(0)
        )
        record = AttemptRecord(
            kind=order.kind,
            client_order_id=order.client_order_id,
            limit_price=order.limit_price,
            broker_order_id=order.broker_order_id,
            status=status,
        )
        return replace(
            chain,
            closed_filled_qty=chain.closed_filled_qty + order.filled_qty,
            closed_filled_value=chain.closed_filled_value + value,
            order=replace(order, filled_qty=Decimal(0), filled_avg_price=None),
            attempts=(*chain.attempts, record),
        )

    def _end(self, chain: Chain, error: str | None) -> Chain:
        """A chain with any fill ends filled (§3.8: partially filled counts); else failed."""
        if chain.filled_qty > 0:
            return replace(chain, state=ChainState.FILLED, error_message=None)
        return replace(chain, state=ChainState.FAILED, error_message=error or chain.error_message)

    def _end_without_order(self, chain: Chain, message: str) -> Chain:
        if chain.filled_qty > 0:
            return replace(chain, state=ChainState.FILLED)
        return replace(chain, state=ChainState.FAILED, error_message=message)

    def _negligible(self, chain: Chain, remaining: Decimal, quote: Quote | None) -> bool:
        price = pricing.remainder_reference_price(chain.side, quote)
        return pricing.remaining_is_negligible(
            remaining, chain.fractionable, price, self._settings.exec_min_notional_usd
        )

    def _absorb_fills(
        self, chain: Chain, emitter: Emitter, current: Order
    ) -> tuple[Chain, Chain | None]:
        """Carry the broker's fills of the working order onto the chain (reporting them); the
        second value is the ended chain when the order is completely filled."""
        assert chain.order is not None
        order = replace(
            chain.order, filled_qty=current.filled_qty, filled_avg_price=current.filled_avg_price
        )
        chain = replace(chain, order=order)
        if current.status is OrderStatus.FILLED:
            self._filled_event(chain, emitter, current, complete=True)
            return chain, self._end(self._close(chain, "filled"), None)
        if current.filled_qty > 0:
            self._filled_event(chain, emitter, current, complete=False)
        return chain, None

    def _filled_event(self, chain: Chain, emitter: Emitter, current: Order, complete: bool) -> None:
        order = chain.order
        assert order is not None
        price = current.filled_avg_price or order.limit_price
        if current.filled_qty <= 0 or price is None:
            if current.filled_qty > 0:
                log.warning("fill reported without a price; OrderFilled not recorded")
            return
        emitter.emit(
            OrderFilled,
            order.requested_event_id,
            **self._order_fields(chain, emitter.state.workflow_id, order.attempt, current.order_id),
            filled_qty=current.filled_qty,
            avg_fill_price=price,
            complete=complete,
        )

    def _order_fields(
        self, chain: Chain, workflow_id: str, attempt: int, broker_order_id: str | None
    ) -> dict[str, object]:
        return {
            "client_order_id": client_order_id(
                workflow_id, chain.symbol, chain.side, chain.side, attempt
            ),
            "symbol": chain.symbol,
            "side": chain.side,
            "phase": chain.side,
            "attempt": attempt,
            "broker_order_id": broker_order_id,
        }

    def _next_poll(self, chain: Chain, now: datetime) -> TimerRequest:
        """Poll every EXEC_POLL_S, but exactly at the age that calls for the next action (the
        re-peg at EXEC_FILL_WAIT_S, the leftover cancel at EXEC_FINAL_WAIT_S)."""
        wait_s = self._settings.exec_poll_s
        order = chain.order
        if order is not None and order.placed_at is not None:
            limit_s = (
                self._settings.exec_final_wait_s
                if order.kind == "market"
                else self._settings.exec_fill_wait_s
            )
            until_s = limit_s - (now - order.placed_at).total_seconds()
            if until_s > 0:
                wait_s = min(wait_s, until_s)
        return TimerRequest(chain.key, TimerKind.POLL, now + timedelta(seconds=wait_s))

    def _cancel_timer(self, chain: Chain, now: datetime) -> TimerRequest:
        wait_s = min(self._settings.exec_poll_s, self._settings.exec_cancel_confirm_s)
        return TimerRequest(chain.key, TimerKind.CANCEL_CHECK, now + timedelta(seconds=wait_s))

    # ------------------------------------------------------------------ broker reads

    async def _quote(self, symbol: str) -> Quote | None:
        try:
            raw = await self._broker.get_latest_quote(symbol)
        except BrokerError:
            return None
        if raw is None:
            return None
        quote = pricing.rest_quote(raw)
        if quote is None or not pricing.is_valid_quote(quote):
            return None
        return quote

    async def _asset(self, symbol: str) -> sizing.AssetInfo | None:
        return await self._assets.get(self._broker, symbol)

    async def _holding(self, chain: Chain) -> tuple[Decimal | None, Decimal | None]:
        if chain.side is Side.BUY:
            return None, None
        try:
            position = await self._broker.get_position(chain.symbol)
        except BrokerError:
            return None, None
        if position is None:
            return Decimal(0), Decimal(0)
        return position.qty, position.qty_available

    async def _lookup(self, client_order_id_: str) -> Order | None:
        try:
            return await self._broker.get_order_by_client_id(client_order_id_)
        except BrokerError:
            return None

    async def _read(self, broker_order_id: str) -> Order | None:
        try:
            return await self._broker.get_order(broker_order_id)
        except BrokerError:
            return None

"""The loopback Alpaca's HTTP face: the subset of Alpaca's Trading and Market Data REST APIs that
alpaca-py calls for our adapter, in Alpaca's paths and JSON shapes, served by uvicorn on
127.0.0.1 (random port) from a background thread.

Every request is authenticated by key, recorded per key, delayed by the world's latency, checked
against the per-key budget and any injected fault, and then answered by the world.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from tests.fakes.alpaca.faults import Fault, FaultKind
from tests.fakes.alpaca.world import AlpacaWorld, Refused
from tests.fakes.clock import ControlledClock

Handler = Callable[[Request], Awaitable[Response]]


def _refusal(refused: Refused) -> JSONResponse:
    return JSONResponse(refused.body, status_code=refused.status)


def _fault_response(fault: Fault) -> Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"}
        if fault.retry_after_s is not None:
            headers["Retry-After"] = str(fault.retry_after_s)
        if fault.reset_in_s is not None:
            headers["X-RateLimit-Reset"] = str(int(time.time()) + fault.reset_in_s)
        return JSONResponse(
            {"code": 42910000, "message": "rate limit exceeded"}, status_code=429, headers=headers
        )
    if fault.kind is FaultKind.ANSWER:
        return Response(fault.body, status_code=fault.status, media_type="application/json")
    return HTMLResponse(fault.body, status_code=500)


def build_app(world: AlpacaWorld) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def alpaca_gate(request: Request, call_next: Handler) -> Response:
        key_id = request.headers.get("APCA-API-KEY-ID", "")
        with world.lock:
            world.log.record(request.method, request.url.path, dict(request.query_params), key_id)
            rate_headers = world.log.headers(key_id)
            over_budget = world.log.over_budget(key_id)
            latency_s = world.latency_s
            fault = next(
                (
                    f
                    for f in world.faults
                    if f.times > 0 and (f.method, f.path) == (request.method, request.url.path)
                ),
                None,
            )
            if fault is not None:
                fault.times -= 1
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        if key_id != world.key_id or request.headers.get("APCA-API-SECRET-KEY") != (
            world.secret_key
        ):
            return JSONResponse({"code": 40110000, "message": "request is not authorized"}, 401)
        if over_budget:
            return JSONResponse(
                {"code": 42910000, "message": "rate limit exceeded"},
                status_code=429,
                headers=rate_headers,
            )
        if fault is not None and fault.kind is FaultKind.HANG:
            await asyncio.sleep(fault.hang_s)
            return HTMLResponse("<html><body>504 Gateway Time-out</body></html>", 504)
        if fault is not None and fault.kind is not FaultKind.LOSE_RESPONSE:
            return _fault_response(fault)
        response: Response = await call_next(request)
        if rate_headers is not None:
            response.headers.update(rate_headers)
        if fault is not None:
            await asyncio.sleep(fault.hang_s)
        return response

    def answer(work: Callable[[], Any], status_code: int = 200) -> Response:
        with world.lock:
            world.settle()
            try:
                body = work()
            except Refused as refused:
                return _refusal(refused)
        if body is None:
            return Response(status_code=204)
        return JSONResponse(body, status_code=status_code)

    @app.get("/v2/account")
    async def account() -> Response:
        return answer(world.account_json)

    @app.get("/v2/positions")
    async def positions() -> Response:
        return answer(lambda: [world.position_json(s) for s in sorted(world.account.holdings)])

    @app.get("/v2/positions/{symbol}")
    async def position(symbol: str) -> Response:
        return answer(lambda: world.position_json(symbol))

    @app.delete("/v2/positions/{symbol}")
    async def close_position(request: Request, symbol: str) -> Response:
        query = request.query_params
        return answer(
            lambda: world.close_position(symbol, query.get("qty"), query.get("percentage"))
        )

    @app.delete("/v2/positions")
    async def close_all(request: Request) -> Response:
        cancel = request.query_params.get("cancel_orders", "").lower() == "true"
        return answer(lambda: world.close_all(cancel), status_code=207)

    @app.get("/v2/assets/{symbol}")
    async def asset(symbol: str) -> Response:
        def found() -> Any:
            if symbol not in world.market.assets:
                raise Refused(404, 40410000, "asset not found")
            return world.market.assets[symbol].json(symbol)

        return answer(found)

    @app.post("/v2/orders")
    async def submit(request: Request) -> Response:
        body = await request.json()
        return answer(lambda: world.submit(body))

    @app.get("/v2/orders")
    async def list_orders(request: Request) -> Response:
        return answer(lambda: world.list_orders(dict(request.query_params)))

    @app.delete("/v2/orders")
    async def cancel_all() -> Response:
        return answer(world.cancel_all, status_code=207)

    @app.get("/v2/orders:by_client_order_id")
    async def by_client_id(client_order_id: str) -> Response:
        return answer(lambda: world.read_order(world.book.by_client_id(client_order_id)))

    @app.get("/v2/orders/{order_id}")
    async def get_order(order_id: str) -> Response:
        return answer(lambda: world.read_order(world.book.orders.get(order_id)))

    @app.delete("/v2/orders/{order_id}")
    async def cancel(order_id: str) -> Response:
        return answer(lambda: world.cancel(order_id))

    @app.get("/v2/clock")
    async def clock() -> Response:
        return answer(world.clock_json)

    @app.get("/v2/calendar")
    async def calendar(start: dt.date, end: dt.date) -> Response:
        return answer(lambda: world.calendar_json(start, end))

    @app.get("/v2/stocks/quotes/latest")
    async def latest_quotes(symbols: str) -> Response:
        return answer(lambda: {"quotes": world.market.quotes_json(symbols.split(","))})

    @app.get("/v2/stocks/trades/latest")
    async def latest_trades(symbols: str) -> Response:
        return answer(lambda: {"trades": world.market.trades_json(symbols.split(","))})

    @app.get("/v2/stocks/bars")
    async def bars(symbols: str, start: str, end: str) -> Response:
        begin = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        finish = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
        return answer(
            lambda: {
                "bars": world.market.bars_json(symbols.split(","), begin, finish),
                "next_page_token": None,
            }
        )

    return app


class AlpacaLoopback:
    """Serves an `AlpacaWorld` on 127.0.0.1 (random port) from a background thread."""

    def __init__(self, world: AlpacaWorld) -> None:
        self.world = world
        config = uvicorn.Config(
            build_app(world),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="alpaca-loopback", daemon=True
        )

    @property
    def base_url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the loopback Alpaca server did not start within 10 s")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def running_alpaca(
    *,
    key_id: str = "PKLOOPBACKKEY0001",
    secret_key: str = "loopback-secret-0001",
    cash: Decimal = Decimal(100000),
    clock: ControlledClock | None = None,
) -> Iterator[AlpacaLoopback]:
    """A loopback Alpaca for one test; its clock runs from a Tuesday morning in the session
    unless `clock` is given (share that clock with the code under test)."""
    loopback = AlpacaLoopback(
        AlpacaWorld(key_id=key_id, secret_key=secret_key, cash=cash, clock=clock)
    )
    loopback.start()
    try:
        yield loopback
    finally:
        loopback.stop()

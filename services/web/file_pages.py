"""The pages over the installation's files beside the store: Strategies (the allocation config
and its strategy files, with their recorded allocations), Backtests (the reports `alchemiser
backtest` keeps under ALCHEMISER_DATA_DIR/backtests/) and Replays (the comparisons
`alchemiser replay --save` keeps under ALCHEMISER_DATA_DIR/replays/) (docs/web.md, Pages).

No `from __future__ import annotations`: FastAPI resolves the routes' annotations, which name
the caller's session dependency, when the routes are declared.
"""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from services.web import queries
from services.web.rendering import FRAMING_POLICY, render, secure
from services.web.report_policy import report_policy
from services.web.session import Session
from services.web.strategies import HISTORY_RUNS, base_name, config_of, outline_of, stacked
from shared.eventstore.store import SqlEventStore
from shared.settings import Settings

BACKTESTS_FOLDER = "backtests"
REPLAYS_FOLDER = "replays"
REPORT_NAME = re.compile(r"backtest-[0-9TZ]+-[0-9a-f]*")
REPLAY_NAME = re.compile(r"replay-[0-9TZ]+-[0-9A-Za-z_.:-]+")
LISTED = 200
"""The newest files a list shows."""


def add_file_pages(
    router: APIRouter,
    store: SqlEventStore,
    settings: Settings,
    page_session: Callable[[Request], Session],
) -> None:
    @router.get("/strategies")
    async def strategies_page(session: Annotated[Session, Depends(page_session)]) -> Response:
        config = config_of(settings)
        files = []
        if not isinstance(config, str):
            for name in config.files:
                history = await queries.signals_of(store, name, HISTORY_RUNS)
                files.append(
                    {
                        "file": name,
                        "name": base_name(name),
                        "weight": config.file_weights[name],
                        "current": history[-1] if history else None,
                        "chart": stacked(history),
                    }
                )
        return render(
            "strategies.html",
            signed_in=True,
            csrf=session.csrf,
            config=None if isinstance(config, str) else config.path,
            error=config if isinstance(config, str) else None,
            files=files,
        )

    @router.get("/strategies/{name}")
    async def strategy_page(
        name: str, session: Annotated[Session, Depends(page_session)]
    ) -> Response:
        config = config_of(settings)
        if isinstance(config, str):
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, config)
        file_name = next((f for f in config.files if base_name(f) == name), None)
        if file_name is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no strategy file {name} in {config.path}"
            )
        history = await queries.signals_of(store, file_name, 1)
        last = history[-1] if history else None
        return render(
            "strategy.html",
            signed_in=True,
            csrf=session.csrf,
            name=name,
            path=config.file_path(file_name),
            last=last,
            outline=outline_of(config, file_name, last["trace"] if last else []),
        )

    @router.get("/backtests")
    async def backtests_page(session: Annotated[Session, Depends(page_session)]) -> Response:
        reports = [
            {"name": path.stem, **_headline(path.with_suffix(".json"))}
            for path in _newest(settings.data_dir / BACKTESTS_FOLDER, "backtest-*.html")
        ]
        return render(
            "backtests.html",
            signed_in=True,
            csrf=session.csrf,
            folder=settings.data_dir / BACKTESTS_FOLDER,
            reports=reports,
        )

    @router.get("/backtests/{name}")
    async def backtest_page(
        name: str, session: Annotated[Session, Depends(page_session)]
    ) -> Response:
        _file(settings.data_dir / BACKTESTS_FOLDER, name, REPORT_NAME, ".html")
        return render(
            "backtest.html",
            policy=FRAMING_POLICY,
            signed_in=True,
            csrf=session.csrf,
            name=name,
        )

    @router.get("/backtests/{name}/report")
    async def backtest_report(
        name: str, session: Annotated[Session, Depends(page_session)]
    ) -> Response:
        """The report itself, for the sandboxed frame of its page, under a policy of its own."""
        page = _file(settings.data_dir / BACKTESTS_FOLDER, name, REPORT_NAME, ".html")
        return secure(HTMLResponse(page), policy=report_policy(page), frame_options="SAMEORIGIN")

    @router.get("/replays")
    async def replays_page(session: Annotated[Session, Depends(page_session)]) -> Response:
        replays = []
        for path in _newest(settings.data_dir / REPLAYS_FOLDER, "replay-*.json"):
            document = _json(path)
            if document is not None:
                replays.append({"name": path.stem, **document})
        return render(
            "replays.html",
            signed_in=True,
            csrf=session.csrf,
            folder=settings.data_dir / REPLAYS_FOLDER,
            replays=replays,
        )

    @router.get("/replays/{name}")
    async def replay_page(
        name: str, session: Annotated[Session, Depends(page_session)]
    ) -> Response:
        document = json.loads(_file(settings.data_dir / REPLAYS_FOLDER, name, REPLAY_NAME, ".json"))
        return render(
            "replay.html",
            signed_in=True,
            csrf=session.csrf,
            name=name,
            replay=document,
            plan=_sides(document["plan"]),
            orders=_sides(document["orders"]),
        )


def _newest(folder: Path, pattern: str) -> list[Path]:
    """The newest files first: their names begin with the UTC time they were written."""
    return sorted(folder.glob(pattern), reverse=True)[:LISTED] if folder.is_dir() else []


def _file(folder: Path, name: str, pattern: re.Pattern[str], suffix: str) -> str:
    path = folder / f"{name}{suffix}"
    if not pattern.fullmatch(name) or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {name}{suffix} in {folder}")
    return path.read_text(encoding="utf-8")


def _json(path: Path) -> dict[str, Any] | None:
    """A kept JSON document; None while it is being written or when it is not JSON."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _headline(path: Path) -> dict[str, Any]:
    """A report's parameters and metrics; empty for a report kept without them."""
    return _json(path) or {"parameters": {}, "metrics": {}}


def _sides(pair: dict[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    """Each line of either side, with whether the recording, the replay or both have it."""
    recorded = {tuple(line.values()) for line in pair["recorded"]}
    replayed = {tuple(line.values()) for line in pair["replayed"]}
    return [
        {
            "symbol": symbol,
            "action": action,
            "amount": amount,
            "recorded": (symbol, action, amount) in recorded,
            "replayed": (symbol, action, amount) in replayed,
        }
        for symbol, action, amount in sorted(recorded | replayed)
    ]

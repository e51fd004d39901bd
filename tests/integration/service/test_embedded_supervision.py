"""In the embedded process a service task that dies stops the run at once with the task and the
reason, instead of leaving the workflow waiting for its deadline."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from services.embedded import ServiceTaskDiedError, prepare_data, run_once
from services.execution import service as execution_service
from shared.service.runtime import Periodic, PeriodicContext, PeriodicOutcome, ServiceDefinition
from shared.settings import Settings, load_settings


async def broken_round(context: PeriodicContext) -> AsyncGenerator[PeriodicOutcome, None]:
    raise RuntimeError("the timer table is unreadable")
    yield  # pragma: no cover - makes this an async generator, as periodic work is


async def test_a_dead_service_task_stops_the_embedded_run_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", workflow_deadline_s=600)
    real_definition = execution_service.definition

    def with_a_dying_task(settings: Settings) -> ServiceDefinition:
        definition = real_definition(settings)
        dying = Periodic("order-timers-broken", 0.01, broken_round)
        return dataclasses.replace(definition, periodic=(*definition.periodic, dying))

    monkeypatch.setattr(execution_service, "definition", with_a_dying_task)
    await prepare_data(settings, lambda line: None)
    started = time.monotonic()

    with pytest.raises(ServiceTaskDiedError) as died:
        await run_once(settings, account_id="default", out_dir=tmp_path / "out", progress=print)

    assert "execution:order-timers-broken" in str(died.value)
    assert "the timer table is unreadable" in str(died.value)
    assert time.monotonic() - started < 60

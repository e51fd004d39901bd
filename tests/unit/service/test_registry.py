"""The one service registry agrees with what each service says of itself and with the workflow's
step table: same name, bound to exactly the events its step answers."""

from __future__ import annotations

from services.registry import SERVICES
from shared.settings import Settings
from shared.workflow import STEPS, WorkflowKind, follows_of


def test_each_service_is_bound_to_the_events_its_steps_and_the_halt_answer() -> None:
    steps = STEPS[WorkflowKind.DAILY]
    settings = Settings()

    assert [name.value for name in SERVICES] == [step.service for step in steps]
    halts = {"execution": {"TradingHalted"}, "notify": {"TradingHalted", "TradingResumed"}}
    for name, registered in SERVICES.items():
        definition = registered.definition(settings)
        assert definition.name == name.value
        answered = set(follows_of(name.value)) | halts.get(name.value, set())
        assert set(definition.event_types) == answered
        assert len(definition.event_types) == len(answered)


def test_each_service_has_its_own_default_port() -> None:
    ports = [registered.default_port for registered in SERVICES.values()]

    assert ports == [8001, 8002, 8003, 8004]

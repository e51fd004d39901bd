"""The one service registry agrees with what each service says of itself and with the workflow's
step table: same name, bound to exactly the events its step answers."""

from __future__ import annotations

from services.registry import SERVICES
from shared.settings import Settings
from shared.workflow import STEPS, WorkflowKind


def test_each_service_is_bound_to_the_events_its_step_answers() -> None:
    steps = STEPS[WorkflowKind.DAILY]
    settings = Settings()

    assert [name.value for name in SERVICES] == [step.service for step in steps]
    for step, (name, registered) in zip(steps, SERVICES.items(), strict=True):
        definition = registered.definition(settings)
        assert definition.name == name.value
        assert definition.event_types == step.follows


def test_each_service_has_its_own_default_port() -> None:
    ports = [registered.default_port for registered in SERVICES.values()]

    assert ports == [8001, 8002, 8003, 8004]

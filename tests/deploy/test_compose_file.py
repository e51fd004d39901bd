"""compose.yaml and .env.example, checked offline: the compose specification's schema, pinned
images, the start order, healthchecks, and every setting documented with no secret in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from services import registry
from shared.settings import ENV_PREFIX, Settings
from tests.deploy.compose_file import (
    COMPOSE_FILE,
    REPO,
    application_services,
    interpolate,
    load_compose,
)

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
SERVICES = {name.value: service.default_port for name, service in registry.SERVABLE.items()}
READ_ONLY = {registry.READ_SIDE.name.value}
"""Consumes no event: needs PostgreSQL and the migration, not RabbitMQ or the bar store."""
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD")
SETTING_LINE = re.compile(r"^#?\s*(ALCHEMISER_[A-Z0-9_]+)=(.*)$")


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_infrastructure_images_pin_their_major_version() -> None:
    images = {name: s["image"] for name, s in load_compose()["services"].items()}
    assert images["rabbitmq"] == "rabbitmq:3.13-management"
    assert images["postgres"] == "postgres:16"
    assert re.fullmatch(r"axllent/mailpit:v\d+\.\d+\.\d+", images["mailpit"])


@pytest.mark.parametrize(("name", "port"), SERVICES.items())
def test_each_service_starts_after_migration_on_healthy_servers_and_checks_its_healthz(
    name: str, port: int
) -> None:
    service = application_services(load_compose())[name].definition
    assert service["command"] == ["serve", name, "--host", "0.0.0.0", "--port", str(port)]
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
    if name in READ_ONLY:
        assert set(service["depends_on"]) == {"migrate", "postgres"}
    else:
        assert service["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
        assert service["depends_on"]["bars"] == {"condition": "service_completed_successfully"}
    probe = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe


def test_servers_have_volumes_and_healthchecks() -> None:
    services = load_compose()["services"]
    for name in ("rabbitmq", "postgres"):
        assert services[name]["volumes"], name
        assert services[name]["healthcheck"]["test"], name


def test_with_no_env_file_compose_runs_paper_on_the_simulated_broker_with_mailpit() -> None:
    environment = application_services(load_compose())["strategy"].environment
    assert environment["ALCHEMISER_TRADING_MODE"] == "paper"
    assert environment["ALCHEMISER_BROKER"] == "simulated"
    assert environment["ALCHEMISER_API_TOKEN"].startswith("paper-only")
    assert environment["ALCHEMISER_SMTP_HOST"] == "mailpit"
    assert environment["ALCHEMISER_SMTP_PORT"] == "1025"
    assert environment["ALCHEMISER_SMTP_STARTTLS"] == "false"
    mailpit = load_compose()["services"]["mailpit"]
    assert "127.0.0.1:8025:8025" in mailpit["ports"]


def test_env_file_values_reach_the_services_through_interpolation() -> None:
    live = {
        "ALCHEMISER_TRADING_MODE": "live",
        "ALCHEMISER_BROKER": "alpaca",
        "ALCHEMISER_API_TOKEN": "from-env-file",
        "POSTGRES_PASSWORD": "pw",
    }
    for service in application_services(load_compose(live)).values():
        assert service.environment["ALCHEMISER_TRADING_MODE"] == "live"
        assert service.environment["ALCHEMISER_BROKER"] == "alpaca"
        assert service.environment["ALCHEMISER_API_TOKEN"] == "from-env-file"
        assert ":pw@postgres:5432/" in service.environment["ALCHEMISER_DATABASE_URL"]
        assert service.definition["env_file"] == [{"path": ".env", "required": False}]


def test_interpolation_follows_compose_rules() -> None:
    variables = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d} $$HOME", variables) == "x d d $HOME"
    assert interpolate("${EMPTY-d}|${UNSET-d}|${UNSET}", variables) == "|d|"
    assert interpolate("${UNSET:-a${SET:-b}c}|${SET:-a${UNSET:-b}c}", variables) == "axc|x"


def test_an_env_file_url_replaces_the_bundled_servers() -> None:
    external = {
        "ALCHEMISER_DATABASE_URL": "postgresql://u:p@db.example.com:5432/alc",
        "ALCHEMISER_RABBITMQ_URL": "amqps://u:p@mq.example.com:5671/",
    }
    environment = application_services(load_compose(external))["execution"].environment
    assert environment["ALCHEMISER_DATABASE_URL"] == external["ALCHEMISER_DATABASE_URL"]
    assert environment["ALCHEMISER_RABBITMQ_URL"] == external["ALCHEMISER_RABBITMQ_URL"]


def documented_settings() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    return {
        match[1]: match[2].strip() for line in lines if (match := SETTING_LINE.match(line.strip()))
    }


def test_env_example_documents_every_alchemiser_setting() -> None:
    expected = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(documented_settings()) == expected


def test_env_example_holds_no_secret_value_and_sets_nothing_by_accident() -> None:
    lines = (REPO / ".env.example").read_text(encoding="utf-8").splitlines()
    for line in lines:
        assert not line or line.startswith("#"), f"uncommented line in .env.example: {line}"
    for name, value in documented_settings().items():
        if any(word in name for word in SECRET_WORDS):
            assert value == "", f"{name} has a value in .env.example"

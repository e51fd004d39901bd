"""deploy/k8s, checked offline: both overlays render, pass strict schema validation for a
current Kubernetes, and keep the promises of the deployment issue (probes, limits, restricted
security context, no plaintext secret, small ConfigMaps, the schedule, paper and live differing
only where listed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import registry
from shared.allocation_config import parse_allocation_config
from tests.deploy.compose_file import REPO, application_services, load_compose
from tests.deploy.dockerfile import stages
from tests.deploy.kustomize import (
    OVERLAYS,
    POD_TEMPLATE_KINDS,
    containers,
    core_objects,
    manifests,
    named,
    pod_labels,
    pod_spec,
    render,
)

KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# Bundled offline by kubernetes-validate (1.25 to 1.37): the oldest we support and the newest.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
SERVICES = {name.value: service.default_port for name, service in registry.SERVABLE.items()}
DATABASE_ONLY = {f"alchemiser-{registry.READ_SIDE.name.value}"}
"""The web dashboard: PostgreSQL, never RabbitMQ (it consumes no event)."""
SERVER_ACCESS = {"podSelector": {"matchLabels": {"alchemiser.dev/server-access": "true"}}}
DATABASE_ACCESS = {"podSelector": {"matchLabels": {"alchemiser.dev/database-access": "true"}}}
SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASS")
ONE_MIB = 1024 * 1024
BUNDLED = REPO / "services" / "strategy" / "symphonies"
HASH_SUFFIX = re.compile(r"\b(alchemiser-(?:settings|allocation))-[a-z0-9]{10}\b")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_passes_strict_validation(
    overlay: str, version: str, tmp_path: Path
) -> None:
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(core_objects(overlay), encoding="utf-8")
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "--quiet", "-k", version, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_container_is_probed_limited_and_runs_restricted(overlay: str) -> None:
    deployments = [(m, c) for m, c in containers(overlay) if m["kind"] == "Deployment"]
    assert {m["metadata"]["name"] for m, _ in deployments} == {
        f"alchemiser-{name}" for name in SERVICES
    }
    for deployment, container in deployments:
        where = f"{overlay}: {deployment['metadata']['name']}/{container['name']}"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", where
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", where
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, where
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, where
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        assert security["seccompProfile"]["type"] == "RuntimeDefault", where
        pod = pod_spec(deployment)
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert pod["automountServiceAccountToken"] is False, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_volumes_are_only_the_bar_store_claim_and_empty_dirs(overlay: str) -> None:
    for manifest, container in containers(overlay):
        if manifest["metadata"]["name"] in {"postgres", "rabbitmq"}:
            continue
        volumes = {volume["name"]: volume for volume in pod_spec(manifest).get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                assert mount.get("readOnly") is True, mount
            else:
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                assert claim == "alchemiser-bars" or "emptyDir" in volume, mount
        paths = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        assert {"/data", "/tmp"} <= paths, manifest["metadata"]["name"]


def plaintext_secrets(documents: list[dict[str, Any]]) -> list[str]:
    """Every place a secret value is written into the manifests instead of referenced."""
    found = []
    for manifest in documents:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        if manifest["kind"] == "Secret" and (manifest.get("data") or manifest.get("stringData")):
            found.append(f"{name}: a Secret with data")
        if manifest["kind"] == "ConfigMap":
            found += [
                f"{name}: {key}"
                for key in manifest.get("data", {})
                if any(word in key.upper() for word in SECRET_WORDS)
            ]
        if manifest["kind"] in POD_TEMPLATE_KINDS:
            spec = pod_spec(manifest)
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                found += [
                    f"{name}/{container['name']}: {variable['name']}"
                    for variable in container.get("env", [])
                    if any(word in variable["name"].upper() for word in SECRET_WORDS)
                    and "secretKeyRef" not in variable.get("valueFrom", {})
                ]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_manifest_holds_a_plaintext_secret_value(overlay: str) -> None:
    assert plaintext_secrets(manifests(overlay)) == []


def test_the_plaintext_secret_check_finds_a_token_value_a_secret_and_a_config_map_key() -> None:
    leaky = named("live", "Job", "alchemiser-migrate")
    leaky["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "ALCHEMISER_API_TOKEN", "value": "s3cret"}
    )
    documents = [
        leaky,
        {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "s3cret"}},
        {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"ALCHEMISER_SMTP_PASSWORD": "x"}},
    ]
    assert plaintext_secrets(documents) == [
        "Job/alchemiser-migrate/migrate: ALCHEMISER_API_TOKEN",
        "Secret/s: a Secret with data",
        "ConfigMap/c: ALCHEMISER_SMTP_PASSWORD",
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_config_map_is_under_one_mebibyte(overlay: str) -> None:
    config_maps = [m for m in manifests(overlay) if m["kind"] == "ConfigMap"]
    assert config_maps
    for config_map in config_maps:
        size = sum(
            len(key) + len(str(value).encode())
            for section in ("data", "binaryData")
            for key, value in config_map.get(section, {}).items()
        )
        assert size < ONE_MIB, (config_map["metadata"]["name"], size)


def test_the_allocation_config_map_is_mounted_where_alchemiser_strategy_config_points() -> None:
    settings = named("paper", "ConfigMap", _hashed("paper", "alchemiser-settings"))["data"]
    config_path = settings["ALCHEMISER_STRATEGY_CONFIG"]
    (container,) = pod_spec(named("paper", "Deployment", "alchemiser-strategy"))["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == config_path]
    assert mount["subPath"] == "allocation.json"
    python = stages()[-1].base.split(":")[1].split("-")[0]
    assert config_path == (
        f"/opt/venv/lib/python{python}/site-packages/services/strategy/symphonies/"
        "allocation.deployed.json"
    ), "the config must sit in the image's bundled strategy folder"


def test_the_allocation_config_map_names_only_strategy_files_bundled_in_the_image() -> None:
    data = named("paper", "ConfigMap", _hashed("paper", "alchemiser-allocation"))["data"]
    config = parse_allocation_config(json.loads(data["allocation.json"]), BUNDLED / "x.json")
    for name in config.files:
        assert (BUNDLED / name).is_file(), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_run_the_compose_commands_on_their_ports(overlay: str) -> None:
    compose = application_services(load_compose())
    for name, port in SERVICES.items():
        deployment = named(overlay, "Deployment", f"alchemiser-{name}")
        (container,) = pod_spec(deployment)["containers"]
        assert container["args"] == compose[name].command
        assert container["ports"] == [{"name": "http", "containerPort": port}]
        service = named(overlay, "Service", f"alchemiser-{name}")
        assert service["spec"]["ports"][0]["port"] == port
        budget = named(overlay, "PodDisruptionBudget", f"alchemiser-{name}")
        assert (
            budget["spec"]["selector"]["matchLabels"]
            == deployment["spec"]["selector"]["matchLabels"]
        )
    migrate = named(overlay, "Job", "alchemiser-migrate")
    assert pod_spec(migrate)["containers"][0]["args"] == compose["migrate"].command


def test_triggers_fire_at_12_45_and_15_45_new_york_on_weekdays_after_a_bar_refresh() -> None:
    cron_jobs = {m["metadata"]["name"]: m for m in manifests("live") if m["kind"] == "CronJob"}
    for cron_job in cron_jobs.values():
        assert cron_job["spec"]["timeZone"] == "America/New_York"
    triggers = sorted(
        cron_job["spec"]["schedule"]
        for cron_job in cron_jobs.values()
        if pod_labels(cron_job)["app.kubernetes.io/name"] == "alchemiser-trigger"
    )
    assert triggers == ["45 12 * * 1-5", "45 15 * * 1-5"]
    refresh = cron_jobs["alchemiser-bars-refresh"]
    assert refresh["spec"]["schedule"] == "30 12,15 * * 1-5"
    assert pod_spec(refresh)["containers"][0]["args"] == ["data", "fetch"]
    trigger = pod_spec(cron_jobs["alchemiser-trigger-1545"])["containers"][0]
    assert trigger["args"][0].startswith("alchemiser trigger;")


def test_the_trigger_job_treats_a_refusal_as_success_and_fails_otherwise(tmp_path: Path) -> None:
    (script,) = pod_spec(named("live", "CronJob", "alchemiser-trigger-1245"))["containers"][0][
        "args"
    ]
    stand_in = tmp_path / "alchemiser"
    for exit_code, job_exit in ((0, 0), (3, 0), (1, 1), (2, 2)):
        stand_in.write_text(f"#!/bin/sh\nexit {exit_code}\n", encoding="utf-8")
        stand_in.chmod(0o755)
        result = subprocess.run(
            ["/bin/sh", "-c", script], env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, check=False
        )
        assert result.returncode == job_exit, exit_code


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_services_and_the_migration_may_reach_rabbitmq_and_postgres(overlay: str) -> None:
    """The servers admit two labels: `server-access` (both servers: the four workflow services
    and the migration) and `database-access` (PostgreSQL only: the web dashboard)."""
    policies = {
        m["metadata"]["name"]: m for m in manifests(overlay) if m["kind"] == "NetworkPolicy"
    }
    for name, server, port, peers in (
        ("rabbitmq-from-alchemiser-only", "rabbitmq", 5672, [SERVER_ACCESS]),
        ("postgres-from-alchemiser-only", "postgres", 5432, [SERVER_ACCESS, DATABASE_ACCESS]),
    ):
        spec = policies[name]["spec"]
        assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": server}
        clients = [
            rule for rule in spec["ingress"] if {"protocol": "TCP", "port": port} in rule["ports"]
        ]
        assert [rule["from"] for rule in clients] == [peers]
    workloads = [m for m in manifests(overlay) if m["kind"] in {"Deployment", "Job", "CronJob"}]
    both = {
        m["metadata"]["name"]
        for m in workloads
        if pod_labels(m).get("alchemiser.dev/server-access") == "true"
    }
    database_only = {
        m["metadata"]["name"]
        for m in workloads
        if pod_labels(m).get("alchemiser.dev/database-access") == "true"
    }
    assert both == {f"alchemiser-{name}" for name in SERVICES} - DATABASE_ONLY | {
        "alchemiser-migrate"
    }
    assert database_only == DATABASE_ONLY


def test_the_paper_servers_are_the_pods_the_network_policies_protect() -> None:
    for server in ("postgres", "rabbitmq"):
        stateful_set = named("paper", "StatefulSet", server)
        assert pod_labels(stateful_set)["app.kubernetes.io/name"] == server
        assert stateful_set["spec"]["volumeClaimTemplates"], server


def _hashed(overlay: str, name: str) -> str:
    (found,) = [
        m["metadata"]["name"]
        for m in manifests(overlay)
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].startswith(f"{name}-")
    ]
    return str(found)


def _normalised(overlay: str) -> dict[tuple[str, str], Any]:
    text = HASH_SUFFIX.sub(r"\1-HASH", render(overlay))
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    by_key: dict[tuple[str, str], Any] = {}
    for doc in documents:
        doc["metadata"].pop("namespace", None)
        if doc["kind"] == "Namespace":
            doc["metadata"]["name"] = "NAMESPACE"
        by_key[(doc["kind"], doc["metadata"]["name"])] = doc
    return by_key


# The differences between the paper and live renders that are meant (besides the namespace).
PAPER_ONLY = {
    ("StatefulSet", "postgres"),
    ("Service", "postgres"),
    ("StatefulSet", "rabbitmq"),
    ("Service", "rabbitmq"),
}
LIVE_SETTINGS = {
    "ALCHEMISER_TRADING_MODE": ("paper", "live"),
    "ALCHEMISER_BROKER": ("simulated", "alpaca"),
}


def test_live_differs_from_paper_only_in_the_listed_ways() -> None:
    paper, live = _normalised("paper"), _normalised("live")
    assert set(paper) - set(live) == PAPER_ONLY
    assert set(live) - set(paper) == set()
    settings = ("ConfigMap", "alchemiser-settings-HASH")
    for name, (in_paper, in_live) in LIVE_SETTINGS.items():
        assert paper[settings]["data"][name] == in_paper
        assert live[settings]["data"][name] == in_live
        paper[settings]["data"][name] = live[settings]["data"][name]
    for key in set(live):
        assert paper[key] == live[key], f"{key} differs between the paper and live overlays"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_secret_and_key_is_documented_in_operations(overlay: str) -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for _, container in containers(overlay):
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                row = next(
                    (line for line in guide.splitlines() if f"| `{reference['name']}` |" in line),
                    None,
                )
                assert row is not None, f"docs/operations.md: no row for {reference['name']}"
                assert f"`{reference['key']}`" in row, (reference, row)


RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(manifest: dict[str, Any]) -> list[str]:
    """The rules of the `restricted` Pod Security Standard our namespaces enforce: a pod that
    breaks one is refused by the API server, so the Deployment would never start."""
    spec = pod_spec(manifest)
    pod_security = spec.get("securityContext", {})
    found = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.append(key)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        security = container.get("securityContext", {})
        name = container["name"]
        if security.get("privileged"):
            found.append(f"{name}: privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation must be false")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            found.append(f"{name}: capabilities.drop must be [ALL]")
        if not security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{name}: seccompProfile")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_standard_its_namespace_enforces(
    overlay: str,
) -> None:
    (namespace,) = [m for m in manifests(overlay) if m["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    workloads = [m for m in manifests(overlay) if m["kind"] in POD_TEMPLATE_KINDS]
    assert workloads
    for workload in workloads:
        assert restricted_violations(workload) == [], workload["metadata"]["name"]


def test_the_restricted_check_finds_a_root_container_without_a_seccomp_profile() -> None:
    deployment = named("live", "Deployment", "alchemiser-notify")
    template = deployment["spec"]["template"]["spec"]
    template["securityContext"] = {}
    template["containers"][0]["securityContext"] = {"runAsUser": 0}
    assert restricted_violations(deployment) == [
        "notify: allowPrivilegeEscalation must be false",
        "notify: capabilities.drop must be [ALL]",
        "notify: runAsNonRoot",
        "notify: runAsUser 0",
        "notify: seccompProfile",
    ]

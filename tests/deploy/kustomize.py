"""Rendered Kubernetes manifests: `kubectl kustomize` of an overlay, parsed once per run."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.deploy.compose_file import REPO
from tests.servers import in_ci

OVERLAYS = ("paper", "live", "live-ha")
CUSTOM_RESOURCE_GROUPS = ("keda.sh/", "rabbitmq.com/", "postgresql.cnpg.io/")
"""API groups of the operators' custom resources: no schemas for them offline, so they are
checked field by field (tests/deploy/test_kubernetes_scale.py), not by kubernetes-validate."""
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob"}


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        reason = "kubectl is not on PATH (it renders the kustomize overlays offline)"
        if in_ci():
            pytest.fail(f"{reason}; CI needs it", pytrace=False)
        pytest.skip(reason)
    return found


@functools.cache
def _render(overlay: str, binary: str) -> str:
    result = subprocess.run(
        [binary, "kustomize", str(REPO / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(overlay: str) -> str:
    return _render(overlay, kubectl())


def manifests(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render(overlay)) if doc]


def is_custom_resource(manifest: dict[str, Any]) -> bool:
    return str(manifest["apiVersion"]).startswith(CUSTOM_RESOURCE_GROUPS)


def core_objects(overlay: str) -> str:
    """The render without the custom resources, for validation against Kubernetes' schemas."""
    return yaml.safe_dump_all(
        [doc for doc in manifests(overlay) if not is_custom_resource(doc)], sort_keys=False
    )


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    if manifest["kind"] == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(manifest["spec"]["template"]["spec"])


def pod_labels(manifest: dict[str, Any]) -> dict[str, str]:
    if manifest["kind"] == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    return dict(manifest["spec"]["template"]["metadata"]["labels"])


def containers(overlay: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container of every pod template, init containers too."""
    for manifest in manifests(overlay):
        if manifest["kind"] in POD_TEMPLATE_KINDS:
            spec = pod_spec(manifest)
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                yield manifest, container


def named(overlay: str, kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        m for m in manifests(overlay) if m["kind"] == kind and m["metadata"]["name"] == name
    ]
    return found

"""The live-ha overlay, checked offline: the autoscalers and the operators' servers are custom
resources without schemas here, so their required fields and their agreement with the rest of
the render (Deployments, queues, Secrets, network policies, the namespace's security standard)
are checked field by field."""

from __future__ import annotations

from typing import Any

from tests.deploy.kustomize import is_custom_resource, manifests, named
from tests.deploy.test_kubernetes import restricted_violations

OVERLAY = "live-ha"
AUTOSCALED = ("portfolio", "execution")


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests(OVERLAY) if m["kind"] == kind]


def _settings() -> dict[str, str]:
    (config,) = [
        m for m in _of_kind("ConfigMap") if m["metadata"]["name"].startswith("alchemiser-settings-")
    ]
    return dict(config["data"])


def _secret_of(deployment: dict[str, Any], variable: str) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (entry,) = [e for e in container["env"] if e["name"] == variable]
    return dict(entry["valueFrom"]["secretKeyRef"])


def test_every_custom_resource_is_in_the_live_namespace() -> None:
    custom = [m for m in manifests(OVERLAY) if is_custom_resource(m)]
    assert {m["kind"] for m in custom} == {
        "ScaledObject",
        "TriggerAuthentication",
        "RabbitmqCluster",
        "Cluster",
    }
    assert {m["metadata"].get("namespace") for m in custom} == {"alchemiser-live"}


def test_portfolio_and_execution_scale_on_their_own_queue_depth() -> None:
    scalers = {m["spec"]["scaleTargetRef"]["name"]: m for m in _of_kind("ScaledObject")}
    assert set(scalers) == {f"alchemiser-{service}" for service in AUTOSCALED}
    namespace = _settings()["ALCHEMISER_BUS_NAMESPACE"]
    authentications = {m["metadata"]["name"]: m for m in _of_kind("TriggerAuthentication")}
    for service in AUTOSCALED:
        name = f"alchemiser-{service}"
        scaler, deployment = scalers[name]["spec"], named(OVERLAY, "Deployment", name)
        budget = named(OVERLAY, "PodDisruptionBudget", name)["spec"]
        assert "replicas" not in deployment["spec"], f"{name}: an apply would undo the scaler"
        assert scaler["minReplicaCount"] > budget["maxUnavailable"]
        assert scaler["maxReplicaCount"] > scaler["minReplicaCount"]
        (trigger,) = [t for t in scaler["triggers"] if t["type"] == "rabbitmq"]
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert int(trigger["metadata"]["value"]) > 0
        assert trigger["metadata"]["queueName"] == f"{namespace}.{service}"
        authentication = authentications[trigger["authenticationRef"]["name"]]["spec"]
        (host,) = authentication["secretTargetRef"]
        assert host["parameter"] == "host"
        uses = _secret_of(deployment, "ALCHEMISER_RABBITMQ_URL")
        assert (host["name"], host["key"]) == (uses["name"], uses["key"])


def execution_timer_trigger() -> dict[str, Any]:
    """Execution's trigger on its due timers; its query is run on a migrated database by
    tests/integration/execution/test_timer_backlog_query.py."""
    scaler = named(OVERLAY, "ScaledObject", "alchemiser-execution")["spec"]
    (trigger,) = [t for t in scaler["triggers"] if t["type"] == "postgresql"]
    return dict(trigger)


def test_execution_also_scales_on_its_due_timers_read_with_the_services_database_secret() -> None:
    trigger = execution_timer_trigger()
    assert float(trigger["metadata"]["targetQueryValue"]) > 0
    assert "timers" in trigger["metadata"]["query"]
    authentication = named(OVERLAY, "TriggerAuthentication", trigger["authenticationRef"]["name"])[
        "spec"
    ]
    (connection,) = authentication["secretTargetRef"]
    assert connection["parameter"] == "connection"
    uses = _secret_of(
        named(OVERLAY, "Deployment", "alchemiser-execution"), "ALCHEMISER_DATABASE_URL"
    )
    assert (connection["name"], connection["key"]) == (uses["name"], uses["key"])
    portfolio = named(OVERLAY, "ScaledObject", "alchemiser-portfolio")["spec"]
    assert [t["type"] for t in portfolio["triggers"]] == ["rabbitmq"]


def test_kedas_operator_may_reach_the_servers_it_reads() -> None:
    """The servers' policies admit only the namespace's own labelled pods; the operator polls
    from its namespace, so each server's port needs a policy that admits it too."""
    for server in ("rabbitmq", "postgres"):
        guard = named(OVERLAY, "NetworkPolicy", f"{server}-from-alchemiser-only")["spec"]
        opening = named(OVERLAY, "NetworkPolicy", f"{server}-from-keda")["spec"]
        assert opening["podSelector"] == guard["podSelector"]
        (rule,) = opening["ingress"]
        assert rule["ports"] == guard["ingress"][0]["ports"]
        (source,) = rule["from"]
        assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}
        assert source["podSelector"]["matchLabels"] == {"app": "keda-operator"}


def test_rabbitmq_is_three_nodes_the_network_policy_protects_under_the_restricted_standard() -> (
    None
):
    (cluster,) = _of_kind("RabbitmqCluster")
    spec = cluster["spec"]
    assert spec["replicas"] >= 3 and spec["replicas"] % 2 == 1, "a quorum needs an odd majority"
    assert "pause_minority" in spec["rabbitmq"]["additionalConfig"]
    policy = named(OVERLAY, "NetworkPolicy", "rabbitmq-from-alchemiser-only")
    # the operator labels the pods of a RabbitmqCluster `app.kubernetes.io/name: <its name>`
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": cluster["metadata"]["name"]
    }
    pods = {
        "kind": "StatefulSet",
        "metadata": {"name": "rabbitmq"},
        **spec["override"]["statefulSet"],
    }
    assert restricted_violations(pods) == []


def test_postgres_commits_synchronously_to_a_standby_the_network_policy_protects() -> None:
    (cluster,) = _of_kind("Cluster")
    spec = cluster["spec"]
    assert spec["storage"]["size"]
    synchronous = spec["postgresql"]["synchronous"]
    assert synchronous["method"] in {"any", "first"}
    assert 1 <= synchronous["number"] < spec["instances"], "one standby may be lost at a time"
    assert synchronous["dataDurability"] == "required"
    policy = named(OVERLAY, "NetworkPolicy", "postgres-from-alchemiser-only")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= spec["inheritedMetadata"]["labels"].items()
    replication = named(OVERLAY, "NetworkPolicy", "postgres-replication-and-operator")
    assert replication["spec"]["podSelector"]["matchLabels"] == {
        "cnpg.io/cluster": cluster["metadata"]["name"]
    }


def test_live_ha_adds_to_live_only_the_scalers_and_the_servers() -> None:
    def keyed(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
        return {(m["kind"], m["metadata"]["name"]): m for m in manifests(overlay)}

    live, ha = keyed("live"), keyed(OVERLAY)
    assert set(live) - set(ha) == set()
    assert set(ha) - set(live) == {
        ("ScaledObject", "alchemiser-portfolio"),
        ("ScaledObject", "alchemiser-execution"),
        ("TriggerAuthentication", "alchemiser-rabbitmq"),
        ("TriggerAuthentication", "alchemiser-database"),
        ("NetworkPolicy", "rabbitmq-from-keda"),
        ("NetworkPolicy", "postgres-from-keda"),
        ("RabbitmqCluster", "rabbitmq"),
        ("Cluster", "postgres"),
        ("NetworkPolicy", "postgres-replication-and-operator"),
        ("NetworkPolicy", "rabbitmq-operator"),
    }
    for key, manifest in live.items():
        if key[0] == "Deployment" and key[1].removeprefix("alchemiser-") in AUTOSCALED:
            manifest = {**manifest, "spec": {**manifest["spec"]}}
            manifest["spec"].pop("replicas")
        assert ha[key] == manifest, f"{key} differs between live and live-ha"

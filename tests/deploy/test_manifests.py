"""deploy/kubernetes renders, `kubernetes-validate --strict` accepts every object, and the
objects say what the services need: settings each process reads, probes on routes the
gateway serves, a locked-down pod, and no service before the schema."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from tests.deploy import kustomize
from tests.deploy.commands import built, reader, unknown
from tests.deploy.test_dockerfile import instructions

from common.topics import BROADCAST_SHARDS, BROADCAST_SHARDS_URGENT, TOPICS
from gateway.routes.health import router as health_router

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUSTOMIZATIONS = ("base", "overlays/local")
# the oldest and the newest release whose schemas kubernetes-validate 1.37 ships
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
WORKLOADS = ("Deployment", "Job")

Object = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """Each kustomization's rendered YAML."""
    return {name: kustomize.build(KUBERNETES / name) for name in KUSTOMIZATIONS}


def objects(rendered: dict[str, str], name: str) -> list[Object]:
    return kustomize.documents(rendered[name])


def one(docs: list[Object], kind: str, name: str) -> Object:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pods(docs: list[Object]) -> Iterator[tuple[Object, Object]]:
    """(workload, pod spec) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield doc, doc["spec"]["template"]["spec"]


def containers(spec: Object) -> list[Object]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def environment(container: Object, docs: list[Object]) -> dict[str, str]:
    """What the container's environment holds: its envFrom ConfigMaps and Secrets, then env."""
    data = {
        (d["kind"], d["metadata"]["name"]): d.get("data", {})
        for d in docs
        if d["kind"] in ("ConfigMap", "Secret")
    }

    def secret(name: str) -> dict[str, str]:
        return {k: base64.b64decode(v).decode() for k, v in data[("Secret", name)].items()}

    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= data[("ConfigMap", source["configMapRef"]["name"])]
        else:
            env |= secret(source["secretRef"]["name"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secret(ref["name"])[ref["key"]]
    return env


def allim_containers(docs: list[Object]) -> Iterator[tuple[str, Object]]:
    """(workload/container, container) of every container that runs `allim SUBCOMMAND`."""
    for workload, spec in pods(docs):
        for container in containers(spec):
            if "command" not in container:  # the image's entry point, `allim`
                yield f"{workload['metadata']['name']}/{container['name']}", container


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kubernetes_validate_accepts_every_object(
    rendered: dict[str, str], name: str, version: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered[name], encoding="utf-8")
    checked = subprocess.run(
        [str(VALIDATE), "--strict", "--quiet", "--kubernetes-version", version, str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(objects(rendered, name)) >= 15


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_each_setting_is_one_the_process_reads(rendered: dict[str, str], name: str) -> None:
    docs = objects(rendered, name)
    found = {
        where: unknown(reader(container["args"]), environment(container, docs))
        for where, container in allim_containers(docs)
    }
    assert len(found) >= 5
    assert {where: names for where, names in found.items() if names} == {}


def test_local_overlay_settings_start_every_process(
    rendered: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = objects(rendered, "overlays/local")
    for _, container in allim_containers(docs):
        built(reader(container["args"]), environment(container, docs), monkeypatch)


def test_base_placeholder_secrets_refuse_to_start(
    rendered: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = objects(rendered, "base")
    for where, container in allim_containers(docs):
        with pytest.raises(ValidationError, match="placeholder secret"):
            built(reader(container["args"]), environment(container, docs), monkeypatch)
            pytest.fail(f"{where} starts with the base's placeholder secrets")


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_pods_are_locked_down_and_sized(rendered: dict[str, str], name: str) -> None:
    (user,) = [rest for word, rest in instructions() if word == "USER"]
    uid, gid = (int(part) for part in user.split(":"))
    for workload, spec in pods(objects(rendered, name)):
        where = workload["metadata"]["name"]
        pod = spec["securityContext"]
        assert (pod["runAsNonRoot"], pod["runAsUser"], pod["runAsGroup"]) == (True, uid, gid), where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in containers(spec):
            at = f"{where}/{container['name']}"
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, at
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, at
            assert ":" in container["image"], f"{at}: the image has no tag (kustomize images)"


def test_the_gateway_is_probed_on_its_own_routes(rendered: dict[str, str]) -> None:
    docs = objects(rendered, "base")
    deployment = one(docs, "Deployment", "allim-gateway")
    (gateway,) = deployment["spec"]["template"]["spec"]["containers"]
    port = int(environment(gateway, docs)["ALLIM_GATEWAY_PORT"])
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    routes = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert gateway[probe]["httpGet"]["path"] == path
        assert ports[gateway[probe]["httpGet"]["port"]] == port
        assert path in routes
    service = one(docs, "Service", "allim-gateway")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    autoscaler = one(docs, "HorizontalPodAutoscaler", "allim-gateway")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "allim-gateway"
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"], "the autoscaler owns the count"


def test_senders_are_replicas_of_one_consumer_group(rendered: dict[str, str]) -> None:
    docs = objects(rendered, "base")
    deployment = one(docs, "Deployment", "allim-senders")
    (sender,) = deployment["spec"]["template"]["spec"]["containers"]
    assert sender["args"] == ["broadcaster", "--role", "sender"]
    assert "ALLIM_BROADCASTER_SENDER_GROUP" in environment(sender, docs)
    partitions = min(
        s.partitions for s in TOPICS if s.name in (BROADCAST_SHARDS, BROADCAST_SHARDS_URGENT)
    )
    # more replicas than partitions would wait idle
    assert 2 <= deployment["spec"]["replicas"] <= partitions
    (planner,) = one(docs, "Deployment", "allim-planner")["spec"]["template"]["spec"]["containers"]
    assert planner["args"] == ["broadcaster", "--role", "planner"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_disruption_budgets_select_running_pods(rendered: dict[str, str], name: str) -> None:
    docs = objects(rendered, name)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert {b["metadata"]["name"] for b in budgets} == {"allim-gateway", "allim-senders"}
    for budget in budgets:
        deployment = one(docs, "Deployment", budget["metadata"]["name"])
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_the_migration_runs_first_and_the_services_wait_for_it(rendered: dict[str, str]) -> None:
    docs = objects(rendered, "base")
    job = one(docs, "Job", "allim-migrate")["spec"]["template"]["spec"]
    assert [c["args"] for c in containers(job)] == [["migrate"], ["topics"]]
    for workload, spec in pods(docs):
        if workload["kind"] == "Deployment":
            first = spec["initContainers"][0]
            assert first["name"] == "wait-for-schema", workload["metadata"]["name"]
            assert "ALLIM_DATABASE_URL" in environment(first, docs)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kafka_and_postgres_are_external_services(rendered: dict[str, str], name: str) -> None:
    docs = objects(rendered, name)
    external = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Service" and d["spec"].get("type") == "ExternalName"
    }
    assert not [d for d in docs if d["kind"] == "StatefulSet"], "no data store is deployed"
    for where, container in allim_containers(docs):
        env = environment(container, docs)
        if "ALLIM_KAFKA_BOOTSTRAP" in env:
            assert env["ALLIM_KAFKA_BOOTSTRAP"].split(":")[0] in external, where
        if "ALLIM_DATABASE_URL" in env:
            assert make_url(env["ALLIM_DATABASE_URL"]).host in external, where


def test_local_links_and_dealer_are_services_of_the_overlay(rendered: dict[str, str]) -> None:
    docs = objects(rendered, "overlays/local")
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"} == {"allim-local"}
    (sender,) = one(docs, "Deployment", "allim-senders")["spec"]["template"]["spec"]["containers"]
    (sandbox,) = one(docs, "Deployment", "allim-sandbox")["spec"]["template"]["spec"]["containers"]
    env = environment(sender, docs)
    assert urlsplit(env["ALLIM_PUBLIC_BASE_URL"]).hostname == "allim-gateway"
    assert urlsplit(env["ALLIM_KAKAO_BASE_URL"]).hostname == "allim-sandbox" in services
    assert env["ALLIM_KAKAO_SECRET"] == environment(sandbox, docs)["ALLIM_SANDBOX_SECRET_KEY"]

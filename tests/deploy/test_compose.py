"""deploy/compose.yaml gives each service the settings it reads, with values its settings
class accepts, and addresses that resolve inside the compose network."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tests.deploy.commands import built, reader, unknown

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
# ${NAME:-default}: what compose puts there when NAME is not set
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def services() -> dict[str, dict[str, Any]]:
    """The services that run the allim image."""
    loaded: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))[
        "services"
    ]
    return {name: spec for name, spec in loaded.items() if spec.get("image") == "allim:local"}


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """A service's environment, each ${NAME:-default} as compose fills it with NAME unset."""
    env = spec.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {name: _DEFAULTED.sub(r"\2", str(value)) for name, value in env.items()}


SERVICES = sorted(services())


def test_every_allim_process_is_here() -> None:
    commands = {spec["command"][0] for spec in services().values()}
    assert commands == {"migrate", "gateway", "broadcaster", "analytics", "sandbox"}


@pytest.mark.parametrize("service", SERVICES)
def test_each_setting_is_one_the_service_reads(service: str) -> None:
    spec = services()[service]
    assert unknown(reader(spec["command"]), environment(spec)) == []


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_starts_with_its_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = services()[service]
    built(reader(spec["command"]), environment(spec), monkeypatch)


def test_addresses_are_service_names_of_this_network() -> None:
    names = set(yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"])
    for service, spec in services().items():
        env = environment(spec)
        for setting in ("ALLIM_PUBLIC_BASE_URL", "ALLIM_KAKAO_BASE_URL"):
            if setting in env:
                host = urlsplit(env[setting]).hostname
                assert host in names, f"{service}: {setting} names '{host}', no service here"
        assert env["ALLIM_KAFKA_BOOTSTRAP"].split(":")[0] in names
    # the links the senders render are tapped by the sandbox's simulated people
    senders = environment(services()["senders"])
    assert urlsplit(senders["ALLIM_PUBLIC_BASE_URL"]).hostname == "gateway"


def test_the_sandbox_accepts_the_senders_secret() -> None:
    senders = environment(services()["senders"])
    sandbox = environment(services()["sandbox"])
    assert senders["ALLIM_KAKAO_SECRET"] == sandbox["ALLIM_SANDBOX_SECRET_KEY"]

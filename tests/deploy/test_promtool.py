"""The Prometheus files under deploy/ as Prometheus itself reads them: `promtool check
config`, `promtool check rules`, and the rule tests in deploy/prometheus/tests, which
make every alert in alerts.yml fire and stay quiet at least once each. promtool comes from
Debian's `prometheus` package, installed by deploy/prometheus/promtool.sh when missing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_TESTS = sorted((DEPLOY / "tests").glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    """The path of promtool, installed first when it is missing."""
    found = subprocess.run(
        [str(DEPLOY / "promtool.sh")], capture_output=True, text=True, check=False, timeout=600
    )
    assert found.returncode == 0, f"promtool.sh failed: {found.stderr}"
    return found.stdout.strip().splitlines()[-1]


def run(promtool: str, *args: str) -> str:
    """promtool's output; the test fails with it when promtool does."""
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, check=False, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


def test_the_config_is_valid(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "check", "config", str(DEPLOY / "prometheus.yml"))


def test_the_rules_are_valid(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "check", "rules", str(DEPLOY / "alerts.yml"))


def test_the_rule_tests_pass(promtool: str) -> None:
    assert RULE_TESTS, "no rule tests in deploy/prometheus/tests"
    assert "SUCCESS" in run(promtool, "test", "rules", *map(str, RULE_TESTS))


def _cases() -> list[dict[str, Any]]:
    return [
        case
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((DEPLOY / "alerts.yml").read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    }
    cases = _cases()
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert alerts - firing == set(), "never seen firing"
    assert alerts - quiet == set(), "never seen staying quiet"
    assert (firing | quiet) <= alerts, "a rule test names an alert alerts.yml does not have"

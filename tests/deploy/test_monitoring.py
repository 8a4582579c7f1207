"""The Prometheus and Grafana files under deploy/ name only metrics allim exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from analytics.config import AnalyticsSettings
from analytics.metrics import AnalyticsMetrics
from broadcaster.config import BroadcasterSettings
from broadcaster.metrics import BroadcasterMetrics
from gateway.config import GatewaySettings
from gateway.metrics import GatewayMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "allim-dashboard.json"

# series Prometheus records itself for every scrape target, not exported by allim
SCRAPE_SERIES = frozenset({"up"})

# the sample names prometheus_client writes for a family of each type
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}

FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil",
        "changes", "clamp", "clamp_max", "clamp_min", "count", "count_over_time",
        "count_values", "delta", "deriv", "floor", "group", "histogram_quantile", "idelta",
        "increase", "irate", "label_join", "label_replace", "last_over_time", "max",
        "max_over_time", "min", "min_over_time", "predict_linear", "quantile",
        "quantile_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc",
        "stddev", "stdvar", "sum", "sum_over_time", "time", "timestamp", "topk", "vector",
    }
)  # fmt: skip
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_BARE_GROUPING = re.compile(r"\b(?:group_left|group_right)\b")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; fails on an unknown function."""
    text = _STRING.sub(" ", expr)  # label values like route="/r/{token}"
    text = _MATCHERS.sub(" ", text)  # label names
    text = _RANGE.sub(" ", text)  # [5m], [$__rate_interval]
    text = _GROUPING.sub(" ", text)  # by (le), on(), ignoring(reason)
    text = _BARE_GROUPING.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word in KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):
            assert word in FUNCTIONS, f"'{word}' in {expr!r} is not a PromQL function."
            continue
        names.add(word)
    return names


def exported(registry: CollectorRegistry) -> set[str]:
    """Every sample name `registry` can expose, whether or not its labels have children."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


@pytest.fixture(scope="module")
def allim_metrics() -> set[str]:
    # each service builds its registry this way in its main.py
    registries = (
        GatewayMetrics().registry,
        BroadcasterMetrics().registry,
        AnalyticsMetrics().registry,
    )
    return set().union(*(exported(registry) for registry in registries))


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    """Every alerting rule in alerts.yml."""
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel of the Grafana dashboard, rows' nested panels included."""
    panels: list[dict[str, Any]] = []
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every expression in alerts.yml and the dashboard."""
    found = [(f"alert {rule['alert']}", str(rule["expr"])) for rule in rules()]
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append((f"panel {panel['title']!r}", target["expr"]))
    return found


def test_extracts_metric_names_not_labels_functions_or_strings() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{route="/r/{token}"}[5m])))'
        " / ignoring(reason) group_left sum(rate(b_total[$__rate_interval])) > 1e-3"
        " and on() (c or on() vector(0)) == 0"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_every_expression_names_only_exported_metrics(allim_metrics: set[str]) -> None:
    known = allim_metrics | SCRAPE_SERIES
    unknown = {
        (where, name)
        for where, expr in expressions()
        for name in metric_names(expr)
        if name not in known
    }
    assert not unknown, f"Not exported by allim: {sorted(unknown)}"


def test_every_expression_names_a_metric() -> None:
    for where, expr in expressions():
        assert metric_names(expr), f"The expression of {where} selects no metric: {expr!r}"


def test_every_rule_is_complete() -> None:
    found = rules()
    assert found
    for rule in found:
        name = rule.get("alert")
        assert name, f"A rule without a name: {rule}"
        for key in ("expr", "for"):
            assert rule.get(key), f"Alert '{name}' has no '{key}'."
        assert rule.get("labels", {}).get("severity"), f"Alert '{name}' has no severity."
        assert rule.get("annotations", {}).get("summary"), f"Alert '{name}' has no summary."
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names)), "Two alerts share a name."


def test_every_panel_has_a_title_and_an_expression() -> None:
    panels = dashboard_panels()
    assert panels
    for panel in panels:
        assert panel.get("title"), f"Panel {panel.get('id')} has no title."
        exprs = [target.get("expr") for target in panel.get("targets", [])]
        assert any(exprs), f"Panel '{panel['title']}' has no target with an expr."


def test_dashboard_asks_for_its_prometheus_data_source_at_import() -> None:
    # Grafana 10/11's import asks for each `__inputs` entry and replaces `${NAME}` with the
    # data source chosen; a dashboard without them imports bound to no data source
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["schemaVersion"] == 39
    assert board.get("id") is None  # an import never overwrites another dashboard by id
    assert board["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": board["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    required = {(r["type"], r["id"]) for r in board["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    # the input is the one data source: no variable of that name to shadow it
    assert "DS_PROMETHEUS" not in {v["name"] for v in board["templating"]["list"]}
    text = DASHBOARD.read_text(encoding="utf-8")
    assert set(re.findall(r"\$\{(DS_[A-Z_]+)\}", text)) == {"DS_PROMETHEUS"}
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel[
            "title"
        ]
        for target in panel.get("targets", []):
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_prometheus_scrapes_each_service_on_its_default_port() -> None:
    config = _yaml(PROMETHEUS)
    assert config["rule_files"] == ["alerts.yml"]
    # the defaults, read from the settings classes without building them from the environment
    ports = {
        "gateway": GatewaySettings.model_fields["gateway_port"].default,
        "broadcaster": BroadcasterSettings.model_fields["broadcaster_metrics_port"].default,
        "analytics": AnalyticsSettings.model_fields["analytics_metrics_port"].default,
    }
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(ports)
    for name, port in ports.items():
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
        targets = [t for static in jobs[name]["static_configs"] for t in static["targets"]]
        assert targets == [f"127.0.0.1:{port}"], name
    # the gateway answers /metrics without its token to loopback clients only (its
    # ALLIM_GATEWAY_METRICS_TOKEN unset by default): the local scrape sends none
    assert GatewaySettings.model_fields["gateway_metrics_token"].default is None
    assert "authorization" not in jobs["gateway"]

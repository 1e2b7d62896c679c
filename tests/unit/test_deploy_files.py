"""The files in deploy/: Prometheus scrape config and alert rules (checked
and unit-tested by promtool), the Grafana dashboard, the systemd units."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actorsys import metrics
from actorsys.config import load_config
from tests.support.prom import run_promtool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "actorsys-dashboard.json"
SYSTEMD = DEPLOY / "systemd"

# Every sample name /metrics can show.
EXPOSED = {name for spec in metrics.SPECS.values() for name in spec.exposed_names}
METRIC_NAME = re.compile(r"\bactorsys_[a-z0-9_]+\b")


def _named_metrics(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


# --- Prometheus -------------------------------------------------------------------------------


def test_alert_rules_pass_promtool(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_when_they_should(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", str(PROMETHEUS / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_passes_promtool(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_alert_rules_name_only_declared_metrics() -> None:
    named = _named_metrics((PROMETHEUS / "alerts.yml").read_text())
    assert named, "the alert rules name no actorsys metric"
    assert named <= EXPOSED, f"not declared in actorsys/metrics.py: {sorted(named - EXPOSED)}"


def test_the_required_alerts_exist() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", text, re.MULTILINE))
    assert {
        "ActorsysDaemonDown",
        "ActorsysConsumerLagGrowing",
        "ActorsysJobsFailed",
        "ActorsysNoWorkers",
        "ActorsysJobStoreErrors",
        "ActorsysPartitionPausedLong",
        "ActorsysClosedHourFilesHigh",
    } <= alerts


# --- Grafana ----------------------------------------------------------------------------------


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return found


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_loads_and_has_what_operators_read_first(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] and dashboard["uid"]
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    titles = {p["title"] for p in _panels(dashboard)}
    assert {
        "Throughput",
        "Consumer lag (records)",
        "Consumer lag (time)",
        "In flight",
        "Paused partitions and held batches",
        "Job states",
        "Workers per host",
        "ACK latency",
        "Job duration",
        "Dead letters by reason",
        "Memory (RSS) per role",
        "Watermark lag",
        "Late records",
        "Open windows",
        "Compactions",
        "Files per table",
        "Bytes per table",
        "Files per closed hour",
        "Table commit latency",
    } <= titles
    for panel in _panels(dashboard):
        if panel["type"] != "row":
            assert panel.get("description"), f"panel {panel['title']!r} explains itself"
            assert panel["targets"], panel["title"]


def test_dashboard_queries_name_only_declared_metrics(dashboard: dict[str, Any]) -> None:
    named = set().union(*(_named_metrics(e) for e in _expressions(dashboard)))
    assert named <= EXPOSED, f"not declared in actorsys/metrics.py: {sorted(named - EXPOSED)}"
    for required in (
        "actorsys_records_consumed_total",
        "actorsys_consumer_lag_records",
        "actorsys_consumer_lag_seconds",
        "actorsys_inflight_records",
        "actorsys_partition_paused",
        "actorsys_jobs",
        "actorsys_workers",
        "actorsys_ack_latency_seconds_bucket",
        "actorsys_job_duration_seconds_bucket",
        "actorsys_dead_letters_total",
        "actorsys_process_resident_memory_bytes",
        "actorsys_watermark_seconds",
        "actorsys_late_records_total",
        "actorsys_open_windows",
        "actorsys_compactions_total",
        "actorsys_table_files",
        "actorsys_table_bytes",
        "actorsys_table_files_per_closed_hour",
        "actorsys_table_commit_seconds_bucket",
    ):
        assert required in named, required


def test_dashboard_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:  # a collapsed row's panels are placed when it opens
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_dashboard_queries_are_valid_promql(
    dashboard: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    # Grafana's variables, as Grafana would substitute them.
    def concrete(expr: str) -> str:
        return expr.replace("$__rate_interval", "1m").replace("$instance", ".*")

    rules = [
        {"record": f"dashboard:query_{i}", "expr": concrete(e)}
        for i, e in enumerate(_expressions(dashboard))
        if not e.startswith("label_values(")  # Grafana's own function, not PromQL
    ]
    # YAML is a superset of JSON: promtool parses every expression of this file.
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# --- systemd ----------------------------------------------------------------------------------


def _unit_entries(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every setting, in order (keys may repeat)."""
    entries = []
    section = ""
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, _, value = line.partition("=")
            entries.append((section, key, value))
    return entries


def _unit(name: str) -> dict[str, dict[str, str]]:
    """Settings by section and key; a repeated key keeps its last value."""
    sections: dict[str, dict[str, str]] = {}
    for section, key, value in _unit_entries(name):
        sections.setdefault(section, {})[key] = value
    return sections


UNITS = ("actorsys.service", "actorsys-worker.service")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
}


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def _join_drain_grace_s() -> float:
    from actorsys.cli.join import join

    default = next(p.default for p in join.params if p.name == "drain_grace_s")
    assert isinstance(default, (int, float)), default
    return float(default)


def _run_shutdown_grace_s() -> float:
    return load_config(ROOT / "config" / "production.toml").daemon.shutdown_grace_s


@pytest.mark.parametrize(
    ("name", "command", "grace_s"),
    [
        ("actorsys.service", "actorsys run --config", _run_shutdown_grace_s),
        ("actorsys-worker.service", "actorsys join --convention", _join_drain_grace_s),
    ],
)
def test_systemd_units_drain_on_stop(name: str, command: str, grace_s: Callable[[], float]) -> None:
    unit = _unit(name)
    service = unit["Service"]
    assert command in service["ExecStart"]
    # SIGTERM to the main process only: it drains; the rest is its business.
    assert service["KillMode"] == "mixed"
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert "StartLimitBurst" in unit["Unit"]  # in [Unit]: systemd ignores it in [Service]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # systemd must not kill a drain that would finish: past the grace period,
    # plus time to shut the actor system down.
    assert _seconds(service["TimeoutStopSec"]) >= grace_s() + 30


@pytest.mark.parametrize("name", UNITS)
def test_systemd_units_are_sandboxed_yet_can_write_their_state(name: str) -> None:
    service = _unit(name)["Service"]
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    # ProtectSystem=strict leaves only these writable: the job store and output live here.
    writable = service["ReadWritePaths"].split()
    assert "/var/lib/actorsys" in writable
    assert service["WorkingDirectory"] in writable
    assert service["User"] == "actorsys"


@pytest.mark.parametrize("name", UNITS)
def test_systemd_units_take_secrets_from_a_file_never_the_command_line(name: str) -> None:
    entries = _unit_entries(name)
    files = [value for section, key, value in entries if key == "EnvironmentFile"]
    assert "-/etc/actorsys/secrets.env" in files  # optional: "-"
    text = (SYSTEMD / name).read_text()
    assert "0600" in text  # the comment says how to protect it
    exec_start = _unit(name)["Service"]["ExecStart"]
    assert not re.search(r"(?i)password|secret|://[^/\s]*:[^/\s]*@", exec_start), exec_start


@pytest.mark.parametrize("name", UNITS)
def test_systemd_units_show_an_ip_allow_list_to_adapt(name: str) -> None:
    # Commented out: the networks differ per site; the comment says what must be reachable.
    lines = (SYSTEMD / name).read_text().splitlines()
    assert "#IPAddressDeny=any" in lines
    assert any(line.startswith("#IPAddressAllow=localhost") for line in lines)
    assert "IPAddressDeny" not in _unit(name)["Service"]
    text = " ".join(lines)
    for must_reach in ("Kafka", "admin_port", "ephemeral", "DNS"):
        assert must_reach in text, must_reach

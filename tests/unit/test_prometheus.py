"""The Prometheus side: config, alert rules and their unit tests pass promtool, the
service's /metrics text passes `promtool check metrics`, and every metric the alerts
read exists in telephony/metrics.py (so renaming a metric breaks the build).

promtool comes with Debian's prometheus package (scripts/install-deps.sh); when it
is missing these tests fail rather than skip. Nothing here talks to a Prometheus.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from telephony import metrics
from telephony.lab.topology import NODES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG = DEPLOY / "prometheus.yml"
ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = DEPLOY / "alerts.test.yml"

METRIC_NAME = re.compile(r"\bhotline_[a-z0-9_]+")
RECORDED_NAME = re.compile(r"\bhotline:[a-z0-9_:]+")
MD_REF = re.compile(r"([\w./-]+\.md)#([\w-]+)")
CJK = re.compile(r"[\u4e00-\u9fff]")

# Label values for touching every metric once, so each family has samples.
LABEL_VALUES = {
    "node": "node12345", "platform": "12345", "queue": "q12345", "direction": "12345->110",
    "from": "12345", "to": "110", "mode": "blind", "outcome": "answered", "action": "Ping",
    "reason": "timeout", "cause": "watchdog", "generation": "0",
    "route": "/api/v1/transfers", "status": "200", "kind": "answer",
}

# Run in a child process: touching the metrics here would leave samples in the
# registry other tests read.
_RENDER = f"""
from prometheus_client.metrics import MetricWrapperBase
from telephony import metrics
values = {LABEL_VALUES!r}
for obj in vars(metrics).values():
    if not isinstance(obj, MetricWrapperBase):
        continue
    labels = {{n: values.get(n, "x") for n in obj._labelnames}}
    child = obj.labels(**labels) if labels else obj
    if obj._type == "counter":
        child.inc()
    elif obj._type == "gauge":
        child.set(1)
    else:
        child.observe(0.1)
import sys
sys.stdout.buffer.write(metrics.render()[0])
"""


def promtool_path() -> str:
    path = shutil.which("promtool")
    assert path, ("promtool is missing: scripts/install-deps.sh installs it "
                  "(Debian package prometheus)")
    return path


def run_promtool(*args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run([promtool_path(), *args], cwd=ROOT, input=stdin, capture_output=True,
                          timeout=120, check=False)
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    print(f"$ promtool {' '.join(args)}\n{out}")
    assert proc.returncode == 0, f"promtool {' '.join(args)} exited {proc.returncode}:\n{out}"
    return out


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load(ALERTS)["groups"] for r in g["rules"] if "alert" in r]


def exposed_names() -> set[str]:
    """Every series name the hotline registry can expose, by family type."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",)}
    names = set()
    for family in metrics.REGISTRY.collect():
        names |= {family.name + s for s in suffixes[family.type]}
    return names


def github_anchors(path: Path) -> set[str]:
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


# --- promtool ----------------------------------------------------------------


def test_promtool_check_config() -> None:
    out = run_promtool("check", "config", str(CONFIG.relative_to(ROOT)))
    assert "1 rule files found" in out


def test_promtool_check_rules() -> None:
    out = run_promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    assert "SUCCESS" in out


def test_promtool_test_rules() -> None:
    out = run_promtool("test", "rules", str(ALERT_TESTS.relative_to(ROOT)))
    assert "SUCCESS" in out and "FAILED" not in out


def test_promtool_check_metrics_on_the_service_registry() -> None:
    proc = subprocess.run([sys.executable, "-c", _RENDER], cwd=ROOT, capture_output=True,
                          timeout=60, check=True)
    text = proc.stdout
    families = {f.name for f in metrics.REGISTRY.collect()}
    assert len(families) > 30
    for name in families:  # every family was touched and has samples
        assert re.search(rb"^" + re.escape(name.encode()) + rb"(_total|_bucket|_count)?[{ ]",
                         text, re.M), name
    run_promtool("check", "metrics", stdin=text)


# --- what the rules read -------------------------------------------------------


def test_every_metric_the_alerts_read_exists_in_the_registry() -> None:
    exposed = exposed_names()
    groups = load(ALERTS)["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    used = {n for e in exprs for n in METRIC_NAME.findall(e)}
    assert len(used) >= 10, used
    assert used - exposed == set(), "alerts.yml reads metrics telephony/metrics.py does not expose"
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert {n for e in exprs for n in RECORDED_NAME.findall(e)} <= recorded
    # the scrape health alert reads `up`; no other bare metric is expected
    assert any(re.search(r"\bup\{", e) for e in exprs)
    # The unit tests feed the same names (a test of a made-up series proves nothing).
    series = [s["series"] for t in load(ALERT_TESTS)["tests"] for s in t["input_series"]]
    fed = {n for s in series for n in METRIC_NAME.findall(s)}
    assert fed - exposed == set()
    assert used <= fed, "an alert's metric is never fed in alerts.test.yml"


def test_transfer_failure_outcomes_are_ones_the_operations_report() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "HotlineTransferFailures"]
    regexes = set(re.findall(r'outcome=~"([^"]+)"', rule["expr"]))
    assert len(regexes) == 1, regexes
    source = "\n".join(p.read_text(encoding="utf-8")
                       for p in (ROOT / "telephony" / "control").glob("*.py"))
    for outcome in regexes.pop().split("|"):
        assert f'"{outcome}"' in source, outcome


def test_every_alert_has_severity_bilingual_text_and_a_runbook() -> None:
    rules = alert_rules()
    assert len(rules) >= 10
    assert len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        ann = rule["annotations"]
        for key in ("summary", "description"):
            text = ann[key]
            assert CJK.search(text) and re.search(r"[A-Za-z]{3}", text) and " / " in text, (
                name, key)
        assert ann["runbook_url"].startswith("README.md#"), name
        for value in ann.values():
            for doc, anchor in MD_REF.findall(value):
                assert (ROOT / doc).is_file(), (name, doc)
                assert anchor in github_anchors(ROOT / doc), (name, f"{doc}#{anchor}")


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = load(ALERT_TESTS)
    assert tests["rule_files"] == [ALERTS.name]
    cases: dict[str, list[list[Any]]] = {}
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    names = {r["alert"] for r in alert_rules()}
    assert set(cases) == names
    for name, expected in cases.items():
        assert any(expected), f"{name}: no case where it fires"
        assert not all(expected), f"{name}: no case where it stays quiet"


# --- config and compose --------------------------------------------------------


def test_config_scrapes_both_platforms_and_compose_mounts_the_rules() -> None:
    config = load(CONFIG)
    assert config["global"]["evaluation_interval"]
    targets = {t: sc["labels"]["platform"] for job in config["scrape_configs"]
               for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"127.0.0.1:{n.http_port}": p for p, n in NODES.items()}
    compose = load(ROOT / "docker-compose.yml")
    prom = compose["services"]["prometheus"]
    (config_flag,) = [a for a in prom["command"] if a.startswith("--config.file=")]
    config_path = Path(config_flag.split("=", 1)[1])
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    assert mounts[str(config_path)] == "./deploy/prometheus.yml"
    for rule_file in config["rule_files"]:
        assert (CONFIG.parent / rule_file).is_file(), rule_file
        assert mounts[str(config_path.parent / rule_file)] == f"./deploy/{rule_file}"

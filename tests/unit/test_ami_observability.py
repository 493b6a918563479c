"""The metrics registry and the JSON log setup the AMI session and store rely on."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from telephony import metrics
from telephony.logging import configure_logging, get_logger, log_context

EXPECTED = {
    "hotline_ami_connected": ("gauge", {"node"}),
    "hotline_ami_action_seconds": ("histogram", {"node", "action"}),
    "hotline_events": ("counter", {"node"}),
    "hotline_event_queue_dropped": ("counter", {"node"}),
    "hotline_store_buffer_dropped": ("counter", {"platform"}),
    "hotline_store_write_lag_seconds": ("histogram", {"platform"}),
    "hotline_calls_active": ("gauge", {"platform"}),
    "hotline_transfer_setup_seconds": ("histogram", {"from", "to", "mode", "outcome"}),
    "hotline_answer_wait_seconds": ("histogram", {"platform", "queue"}),
    "hotline_sla_breaches": ("counter", {"kind"}),
}


def test_required_metrics_render_with_conventional_types_and_labels():
    metrics.AMI_CONNECTED.labels(node="obs").set(1)
    metrics.AMI_ACTION_SECONDS.labels(node="obs", action="Ping").observe(0.002)
    metrics.EVENTS.labels(node="obs").inc()
    metrics.EVENT_QUEUE_DROPPED.labels(node="obs").inc()
    metrics.STORE_BUFFER_DROPPED.labels(platform="obs").inc()
    metrics.STORE_WRITE_LAG.labels(platform="obs").observe(0.01)
    metrics.CALLS_ACTIVE.labels(platform="obs").set(3)
    metrics.TRANSFER_SETUP_SECONDS.labels(
        **{"from": "12345", "to": "110", "mode": "blind", "outcome": "ok"}).observe(4.2)
    metrics.ANSWER_WAIT_SECONDS.labels(platform="obs", queue="q12345").observe(12)
    metrics.SLA_BREACHES.labels(kind="answer").inc()

    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name, (kind, labels) in EXPECTED.items():
        assert families[name].type == kind, name
        sample_labels = {k for s in families[name].samples for k in s.labels} - {"le"}
        assert sample_labels == labels, name
    assert "hotline_events_total{node=\"obs\"} 1.0" in body.decode()


def test_json_logs_carry_bound_correlation_keys():
    out = io.StringIO()
    configure_logging("DEBUG", stream=out)
    try:
        log = get_logger("test", platform="12345")
        with log_context(call_id="C-1", ticket_id="T-9"):
            log.info("transfer_started", to="110")
        log.info("after")
    finally:
        structlog.reset_defaults()  # leave other tests' logging alone
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "transfer_started"
    assert (first["platform"], first["call_id"], first["ticket_id"]) == ("12345", "C-1", "T-9")
    assert first["level"] == "info" and first["to"] == "110" and "timestamp" in first
    assert "call_id" not in second  # the context ended with the block


def test_misspelt_correlation_key_is_refused():
    with pytest.raises(ValueError, match="callid"):
        with log_context(callid="C-1"):
            pass

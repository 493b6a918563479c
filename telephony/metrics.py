"""The Prometheus metrics the hotline service exposes, in one registry.

Names follow Prometheus conventions: `_seconds` for durations, `_total` for
counters (prometheus-client appends it), base units only. Every module imports
the metric objects from here, so `/metrics` renders exactly one registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

# Buckets for things that should take milliseconds (AMI round trips, Redis lag).
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Buckets for human-scale waits (answer, transfer setup).
_HUMAN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300)

# --- AMI sessions -----------------------------------------------------------
AMI_CONNECTED = Gauge(
    "hotline_ami_connected",
    "1 while the AMI session to the node is logged in and answering pings.",
    ["node"],
    registry=REGISTRY,
)
AMI_ACTION_SECONDS = Histogram(
    "hotline_ami_action_seconds",
    "AMI action round trip, from write to final response.",
    ["node", "action"],
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
GC_PAUSE_SECONDS = Histogram(
    "hotline_gc_pause_seconds",
    "Garbage-collector pauses of the service process (the event loop stands still).",
    ["generation"],
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
EVENT_LOOP_LAG_SECONDS = Histogram(
    "hotline_event_loop_lag_seconds",
    "How late a 50 ms timer on the service's event loop fired: what a key press may wait.",
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
HTTP_REQUEST_SECONDS = Histogram(
    "hotline_http_request_seconds",
    "HTTP API request handling, from the request read to the response ready.",
    ["route", "status"],
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
AMI_ACTION_FAILURES = Counter(
    "hotline_ami_action_failures",
    "AMI actions that ended in timeout, disconnect, error or a malformed reply.",
    ["node", "action", "reason"],
    registry=REGISTRY,
)
AMI_RECONNECTS = Counter(
    "hotline_ami_reconnects",
    "AMI connections lost (socket closed or watchdog fired) after a login.",
    ["node", "cause"],
    registry=REGISTRY,
)
AMI_MALFORMED = Counter(
    "hotline_ami_malformed_messages",
    "AMI messages that could not be parsed or matched and were discarded.",
    ["node"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "hotline_events",
    "AMI events received and handed to the tracker.",
    ["node"],
    registry=REGISTRY,
)
EVENTS_FILTERED = Counter(
    "hotline_events_filtered",
    "AMI events discarded by the local allow-list (the server filter let them through).",
    ["node"],
    registry=REGISTRY,
)
EVENT_QUEUE_DROPPED = Counter(
    "hotline_event_queue_dropped",
    "AMI events dropped because the tracker's bounded queue was full.",
    ["node"],
    registry=REGISTRY,
)

# --- Redis store -------------------------------------------------------------
STORE_BUFFER_DROPPED = Counter(
    "hotline_store_buffer_dropped",
    "Store writes dropped (oldest first) because the write-behind buffer was full.",
    ["platform"],
    registry=REGISTRY,
)
STORE_BUFFER_DEPTH = Gauge(
    "hotline_store_buffer_depth",
    "Store writes waiting in the write-behind buffer.",
    ["platform"],
    registry=REGISTRY,
)
STORE_WRITE_LAG = Histogram(
    "hotline_store_write_lag_seconds",
    "Time from enqueueing a store write to Redis acknowledging it (oldest write per batch).",
    ["platform"],
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)
STORE_WRITER_RESTARTS = Counter(
    "hotline_store_writer_restarts",
    "Times the store's writer process exited and a new one was started.",
    ["platform"],
    registry=REGISTRY,
)
STORE_FLUSH_ERRORS = Counter(
    "hotline_store_flush_errors",
    "Pipeline flushes that failed and were retried.",
    ["platform"],
    registry=REGISTRY,
)

# --- Calls and SLA -----------------------------------------------------------
CALLS_ACTIVE = Gauge(
    "hotline_calls_active",
    "Calls currently tracked as active.",
    ["platform"],
    registry=REGISTRY,
)
TRANSFER_SETUP_SECONDS = Histogram(
    "hotline_transfer_setup_seconds",
    "From transfer initiation to the target answering (or the transfer failing).",
    ["from", "to", "mode", "outcome"],
    buckets=_HUMAN_BUCKETS,
    registry=REGISTRY,
)
ANSWER_WAIT_SECONDS = Histogram(
    "hotline_answer_wait_seconds",
    "Time a caller waited in queue before an agent answered.",
    ["platform", "queue"],
    buckets=_HUMAN_BUCKETS,
    registry=REGISTRY,
)
SLA_BREACHES = Counter(
    "hotline_sla_breaches",
    "SLA thresholds crossed, by kind (answer, transfer, callback...).",
    ["kind"],
    registry=REGISTRY,
)


# --- SLA figures from the archive (telephony.archive.sla), over the last 24 h --------
SLA_ANSWER_SERVICE_LEVEL = Gauge(
    "hotline_sla_answer_service_level_ratio",
    "Offered calls answered within the answer threshold (15 s), short abandons excluded.",
    ["platform", "queue"],
    registry=REGISTRY,
)
SLA_CONNECTION_RATE = Gauge(
    "hotline_sla_connection_rate_ratio",
    "Offered calls answered at all (GB/T 33358: at least 0.95 over any 24 h).",
    ["platform"],
    registry=REGISTRY,
)
SLA_ABANDON = Gauge(
    "hotline_sla_abandon_ratio",
    "Offered calls abandoned in the queue, short abandons excluded.",
    ["platform", "queue"],
    registry=REGISTRY,
)
SLA_TRANSFER_SUCCESS = Gauge(
    "hotline_sla_transfer_success_ratio",
    "Transfers that reached an answer at the receiving centre, per direction.",
    ["platform", "direction"],
    registry=REGISTRY,
)
SLA_THREE_PARTY_SHARE = Gauge(
    "hotline_sla_three_party_share_ratio",
    "Answered tickets that needed a three-party call.",
    ["platform"],
    registry=REGISTRY,
)
SLA_HANDOFF_COMPLETENESS = Gauge(
    "hotline_sla_handoff_completeness_ratio",
    "Hand-off data fields present on tickets received from another platform.",
    ["platform"],
    registry=REGISTRY,
)
SLA_COMPUTED_AT = Gauge(
    "hotline_sla_computed_timestamp_seconds",
    "When the SLA figures were last computed from the archive (epoch seconds).",
    ["platform"],
    registry=REGISTRY,
)

# --- ticket archive (telephony.archive) ------------------------------------------
ARCHIVE_TICKETS = Counter(
    "hotline_archive_tickets",
    "Ended tickets written to the PostgreSQL archive (a ticket re-archived counts again).",
    ["platform"],
    registry=REGISTRY,
)
ARCHIVE_ERRORS = Counter(
    "hotline_archive_errors",
    "Archive rounds that failed (database or Redis unreachable) and were retried.",
    ["platform"],
    registry=REGISTRY,
)
ARCHIVE_PENDING = Gauge(
    "hotline_archive_pending_tickets",
    "Ended tickets waiting to be archived.",
    ["platform"],
    registry=REGISTRY,
)
ARCHIVE_LAG_SECONDS = Gauge(
    "hotline_archive_lag_seconds",
    "How long the oldest ticket waiting for the archive has waited.",
    ["platform"],
    registry=REGISTRY,
)

# --- supervisor monitor feed (telephony.monitor) -----------------------------
MONITOR_CLIENTS = Gauge(
    "hotline_monitor_clients",
    "Monitor feed clients connected (WebSocket and SSE).",
    ["platform"],
    registry=REGISTRY,
)
MONITOR_MESSAGES = Counter(
    "hotline_monitor_messages",
    "Monitor feed messages published (each numbered once, whatever the client count).",
    ["platform"],
    registry=REGISTRY,
)
MONITOR_SKIPPED = Counter(
    "hotline_monitor_skipped",
    "Times a slow monitor client was skipped ahead to a fresh snapshot.",
    ["platform", "reason"],
    registry=REGISTRY,
)
MONITOR_DISCONNECTS = Counter(
    "hotline_monitor_disconnects",
    "Monitor clients disconnected by the service, by reason.",
    ["platform", "reason"],
    registry=REGISTRY,
)
MONITOR_BUILD_SECONDS = Histogram(
    "hotline_monitor_build_seconds",
    "Time to build and number one loop turn's monitor messages and put them on each "
    "client's queue (each client's own task writes them to its socket).",
    ["platform"],
    buckets=_FAST_BUCKETS,
    registry=REGISTRY,
)


def render() -> tuple[bytes, str]:
    """The text exposition of every hotline metric and its content type, for `/metrics`."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

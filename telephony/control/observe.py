"""Operation listeners: timings into Prometheus histograms.

The histogram object is passed in (telephony/metrics.py owns the registry), so
importing this module registers nothing.
"""

from __future__ import annotations

from typing import Any

from telephony.control.operation import Operation

SETUP_METRIC = "hotline_transfer_setup_seconds"
SETUP_LABELS = ("from", "to", "mode", "outcome")


class SetupTimeRecorder:
    """Feeds hotline_transfer_setup_seconds{from,to,mode,outcome} from finished ops."""

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram

    def op_finished(self, op: Operation) -> None:
        for sample in op.setup_samples():
            labels = {k: str(sample[k]) for k in SETUP_LABELS}
            self.histogram.labels(**labels).observe(float(sample["seconds"]))

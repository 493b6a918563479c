"""Pure statistics for the transfer benchmark: percentiles, overhead and ratio.

Overhead and ratio compare the two paths quantile by quantile (p50 of the
service path against p50 of the raw floor, and so on): the calls of the two
paths are interleaved but are not the same calls, so pairing them one by one
would only add noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks.

    With few samples p99 is close to the maximum, which is what a small run can say.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100: {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return ordered[low] * (1 - weight) + ordered[high] * weight


@dataclass(frozen=True)
class Comparison:
    """Service path (a) against raw floor (b) at one quantile, in ms."""

    q: float
    service_ms: float
    raw_ms: float

    @property
    def overhead_ms(self) -> float:
        return self.service_ms - self.raw_ms

    @property
    def ratio(self) -> float:
        return self.service_ms / self.raw_ms if self.raw_ms > 0 else math.inf


def compare(service: Sequence[float], raw: Sequence[float], q: float) -> Comparison:
    return Comparison(q, percentile(service, q), percentile(raw, q))


def meets_target(comparison: Comparison, max_overhead_ms: float, max_ratio: float) -> bool:
    return comparison.overhead_ms <= max_overhead_ms and comparison.ratio <= max_ratio

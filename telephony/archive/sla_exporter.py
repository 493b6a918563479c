"""The last 24 hours' SLA figures as Prometheus gauges, recomputed from the archive.

A background task of the service: every `every_s` it loads the window's rows
(telephony.archive.sla_source) and sets the `hotline_sla_*` gauges
(telephony.metrics). A figure with no calls behind it is NaN, never a stale
value: an alert on "under target" then stays quiet instead of firing on old
numbers. A failed round (archive down) is logged and leaves
`hotline_sla_computed_timestamp_seconds` unchanged, which the stale-figures
alert watches.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from telephony import metrics
from telephony.archive.measures import Thresholds, figures
from telephony.archive.sla_source import Window, load
from telephony.logging import get_logger

log = get_logger("telephony.archive.sla")
DAY_S = 24 * 3600.0


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


def apply_figures(platform: str, by_queue: Mapping[str, Any], by_platform: Mapping[str, Any],
                  now: float) -> None:
    """Set the gauges from `measures.figures` outputs grouped by (platform, queue) and
    by platform."""
    for group in by_queue["groups"]:
        queue = group["group"].get("queue") or "none"
        answer = group["answer"]
        metrics.SLA_ANSWER_SERVICE_LEVEL.labels(platform=platform, queue=queue).set(
            _value(answer["answer_service_level"]))
        metrics.SLA_ABANDON.labels(platform=platform, queue=queue).set(
            _value(answer["abandon_rate"]))
    mine = [g for g in by_platform["groups"] if g["group"].get("platform") == platform]
    group = mine[0] if mine else None
    metrics.SLA_CONNECTION_RATE.labels(platform=platform).set(
        _value(group["answer"]["connection_rate"] if group else None))
    metrics.SLA_THREE_PARTY_SHARE.labels(platform=platform).set(
        _value(group["three_party"]["share"] if group else None))
    metrics.SLA_HANDOFF_COMPLETENESS.labels(platform=platform).set(
        _value(group["handoff"]["mean_field_share"] if group else None))
    for direction, t in (group["transfers"] if group else {}).items():
        metrics.SLA_TRANSFER_SUCCESS.labels(platform=platform, direction=direction).set(
            _value(t["success_rate"]))
    metrics.SLA_COMPUTED_AT.labels(platform=platform).set(now)


@dataclass
class SlaExporter:
    platform: str
    pool: Callable[[], Awaitable[asyncpg.Pool | None]]  # the service's archive pool
    thresholds: Thresholds = field(default_factory=Thresholds)
    every_s: float = 60.0
    window_s: float = DAY_S

    async def round(self, now: float | None = None) -> bool:
        pool = await self.pool()
        if pool is None:
            return False
        now = time.time() if now is None else now
        async with pool.acquire() as conn:
            tickets, transfers, conferences = await load(
                conn, Window(now - self.window_s, now), self.platform)
        t = self.thresholds
        apply_figures(
            self.platform,
            figures(tickets, transfers, conferences, group_by=("platform", "queue"),
                    thresholds=t),
            figures(tickets, transfers, conferences, group_by=("platform",), thresholds=t),
            now)
        return True

    async def run(self) -> None:
        # From the start, so figures that are never computed (archive down since start-up)
        # go stale too, and the stale-figures alert sees it.
        metrics.SLA_COMPUTED_AT.labels(platform=self.platform).set(time.time())
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the archive is down: try again next round
                log.warning("sla.figures_failed", platform=self.platform, error=repr(exc)[:200])
            await asyncio.sleep(self.every_s)

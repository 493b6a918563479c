"""The rows the SLA measures need for a time window, read from the archive.

Only the columns the measures read, for tickets opened in [start, end) and
transfers initiated in it: one indexed range scan each. The figures themselves
are computed by telephony.archive.measures (pure).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from telephony.archive.measures import Thresholds, figures, from_db

_TICKETS = """
SELECT platform, ticket_id, origin, category, callback, division, queue, outcome,
       negotiation, police_first, opened_at, queued_at, answered_at, abandoned_at
FROM archive_tickets
WHERE opened_at >= $1 AND opened_at < $2 AND ($3::text IS NULL OR platform = $3)
"""
_TRANSFERS = """
SELECT platform, ticket_id, kind, status, direction, initiated_at, target_answer_at,
       caller_drop_at
FROM archive_transfers
WHERE initiated_at >= $1 AND initiated_at < $2 AND ($3::text IS NULL OR platform = $3)
"""
_CONFERENCES = """
SELECT c.platform, c.ticket_id, c.started_at, c.ended_at
FROM archive_conferences c JOIN archive_tickets t USING (platform, ticket_id)
WHERE t.opened_at >= $1 AND t.opened_at < $2 AND ($3::text IS NULL OR t.platform = $3)
  AND t.outcome = 'three_party'
"""


@dataclass(frozen=True)
class Window:
    start: float  # epoch seconds, inclusive
    end: float  # exclusive

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError("the window's end must be after its start")

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        return (dt.datetime.fromtimestamp(self.start, dt.UTC),
                dt.datetime.fromtimestamp(self.end, dt.UTC))


async def load(conn: asyncpg.Connection, window: Window,
               platform: str | None = None) -> tuple[list[dict[str, Any]], ...]:
    """(tickets, transfers, conferences) rows for the window, times in epoch seconds."""
    args = (*window.bounds(), platform)
    out = []
    for sql in (_TICKETS, _TRANSFERS, _CONFERENCES):
        out.append([from_db(r) for r in await conn.fetch(sql, *args)])
    return tuple(out)


async def sla_figures(conn: asyncpg.Connection, window: Window, *,
                      platform: str | None = None, group_by: tuple[str, ...] = ("platform",),
                      thresholds: Thresholds | None = None) -> dict[str, Any]:
    tickets, transfers, conferences = await load(conn, window, platform)
    out = figures(tickets, transfers, conferences, group_by=group_by, thresholds=thresholds)
    return {"window": {"from": window.start, "to": window.end}, "platform": platform, **out}

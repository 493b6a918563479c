"""SLA figures from archived tickets: what GB/T 33358 and the linkage directive ask for. Pure.

Input: ticket rows (archive_tickets) and transfer rows (archive_transfers) as
dicts with times in epoch seconds (`from_db` converts asyncpg records), and
`Thresholds`. Output: plain JSON-able dicts, one per group.

Definitions (one place, so the API, the metrics and the report agree):
- offered: tickets that joined a queue on this platform;
- short abandon: abandoned within `short_abandon_s` of joining (misdials, callers
  who change their mind): left out of offered, answered and abandoned alike;
- answer service level: answered within `answer_s` of joining / offered;
- connection rate: answered at all / offered (target `connection_target`, 0.95);
- abandonment: abandoned (not short) / offered;
- transfers, per direction (e.g. 12345->110): success = completed with the
  receiving centre's answer / attempted; setup time = initiation -> that answer;
  caller drops = the caller hung up while the transfer was under way. The moves
  of caller and agent into a conference (kind `redirect`) are how a three-party
  call starts, not a hand-over: they count under three-party, not here;
- three-party: share of answered tickets that became a three-party call, how
  they ended (agreed / 首接 / police first) and how long the conference lasted;
- hand-off completeness: on tickets received from another platform, the share
  that carried each field of the hand-off (HANDOFF_FIELDS);
- diversions: tickets received from, and transfers completed to, each platform.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

Row = Mapping[str, Any]
GROUPS = ("platform", "queue", "day", "hour", "direction")
# What a receiving agent needs (NENA: location, callback, nature, safety). The lab's
# hand-off (X-Ticket-* headers) carries no location or safety note yet: they count as
# missing, so the figure says what is really handed over.
HANDOFF_FIELDS = ("ticket_id", "callback", "category", "division", "location", "safety")
CONFERENCE_MOVE = "redirect"  # the tracker's transfer kind for a move into a conference
NEGOTIATION_ENDS = {"agreed_12345": "agreed", "agreed_110": "agreed",
                    "no_agreement_first_receiver_keeps": "first_receiver"}


_ENV = {"answer_s": "HOTLINE_SERVICE_LEVEL_S", "short_abandon_s": "HOTLINE_SHORT_ABANDON_S",
        "connection_target": "HOTLINE_CONNECTION_TARGET", "timezone": "HOTLINE_TIMEZONE"}


@dataclass(frozen=True)
class Thresholds:
    answer_s: float = 15.0  # GB/T 33358: answered within 15 s
    connection_target: float = 0.95  # over any 24 h
    short_abandon_s: float = 5.0  # abandons quicker than this are not counted (local)
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if not (0 < self.answer_s <= 600 and 0 <= self.short_abandon_s <= 600
                and 0 < self.connection_target <= 1):
            raise ValueError(f"thresholds out of range: {self}")
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r:.40}") from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Thresholds:
        """HOTLINE_SERVICE_LEVEL_S, HOTLINE_SHORT_ABANDON_S, HOTLINE_CONNECTION_TARGET and
        HOTLINE_TIMEZONE, each defaulting to the value above; ValueError names a bad one."""
        values: dict[str, Any] = {}
        for name, var in _ENV.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            if name == "timezone":
                values[name] = raw
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                raise ValueError(f"{var} is not a number: {raw!r:.40}") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"SLA thresholds from the environment: {exc}") from None


def from_db(record: Mapping[str, Any]) -> dict[str, Any]:
    """An asyncpg row as the measures read it: datetimes become epoch seconds."""
    return {k: v.timestamp() if isinstance(v, dt.datetime) else v for k, v in record.items()}


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (0 < q <= 100) of `values`, None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def _durations(values: Sequence[float]) -> dict[str, float | None]:
    return {"count": len(values),
            "mean_s": round(sum(values) / len(values), 3) if values else None,
            "p50_s": percentile(values, 50), "p90_s": percentile(values, 90),
            "max_s": max(values) if values else None}


def answer_figures(tickets: Iterable[Row], t: Thresholds) -> dict[str, Any]:
    offered = answered = within = abandoned = short = 0
    waits: list[float] = []
    for row in tickets:
        queued = row.get("queued_at")
        if queued is None:
            continue
        answered_at, abandoned_at = row.get("answered_at"), row.get("abandoned_at")
        if answered_at is None and abandoned_at is not None \
                and abandoned_at - queued < t.short_abandon_s:
            short += 1
            continue
        offered += 1
        if answered_at is not None:
            answered += 1
            wait = max(answered_at - queued, 0.0)
            waits.append(wait)
            within += wait <= t.answer_s
        elif abandoned_at is not None:
            abandoned += 1
    connection = _ratio(answered, offered)
    return {
        "offered": offered, "answered": answered, "answered_within": within,
        "abandoned": abandoned, "short_abandons": short,
        "answer_service_level": _ratio(within, offered),
        "connection_rate": connection,
        "connection_target_met": None if connection is None
        else connection >= t.connection_target,
        "abandon_rate": _ratio(abandoned, offered),
        "answer_wait": _durations(waits),
    }


def hand_overs(transfers: Iterable[Row]) -> list[Row]:
    """The transfers that hand a call over (not the moves into a conference)."""
    return [row for row in transfers if row.get("kind") != CONFERENCE_MOVE]


def transfer_figures(transfers: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Per direction: attempts, outcomes, success rate, setup time, caller drops."""
    by_direction: dict[str, list[Row]] = defaultdict(list)
    for row in hand_overs(transfers):
        by_direction[row.get("direction") or "unknown"].append(row)
    out = {}
    for direction, rows in sorted(by_direction.items()):
        setups = [r["target_answer_at"] - r["initiated_at"] for r in rows
                  if r.get("target_answer_at") is not None]
        success = sum(1 for r in rows
                      if r["status"] == "completed" and r.get("target_answer_at") is not None)
        out[direction] = {
            "attempted": len(rows), "succeeded": success,
            "outcomes": dict(sorted(Counter(r["status"] for r in rows).items())),
            "success_rate": _ratio(success, len(rows)),
            "setup": _durations(setups),
            "caller_drops": sum(1 for r in rows if r.get("caller_drop_at") is not None),
            "by_kind": dict(sorted(Counter(r["kind"] for r in rows).items())),
        }
    return out


def three_party_figures(tickets: Sequence[Row],
                        conferences: Iterable[Row] | Mapping[tuple[str, str], list[Row]] = ()
                        ) -> dict[str, Any]:
    """`conferences`: rows, or rows already indexed by (platform, ticket_id)."""
    answered = [r for r in tickets if r.get("outcome") in ("answered", "transferred",
                                                            "three_party")]
    three = [r for r in tickets if r.get("outcome") == "three_party"]
    ends: Counter[str] = Counter()
    for r in three:
        if r.get("police_first"):
            ends["police_first"] += 1  # 110 dispatches first, whatever else was agreed
        else:
            ends[NEGOTIATION_ENDS.get(r.get("negotiation") or "", "not_recorded")] += 1
    by_ticket = conferences if isinstance(conferences, Mapping) else _by_ticket(conferences)
    lasted = [c["ended_at"] - c["started_at"]
              for r in three for c in by_ticket.get((r["platform"], r["ticket_id"]), ())
              if c.get("started_at") is not None and c.get("ended_at") is not None]
    return {"count": len(three), "share": _ratio(len(three), len(answered)),
            "ends": dict(sorted(ends.items())), "duration": _durations(lasted)}


def _by_ticket(rows: Iterable[Row]) -> dict[tuple[str, str], list[Row]]:
    out: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        out[(row["platform"], row["ticket_id"])].append(row)
    return out


def handoff_figures(tickets: Iterable[Row]) -> dict[str, Any]:
    """On tickets received from another platform: the share carrying each field."""
    received = [r for r in tickets if r.get("origin") and r["origin"] != r["platform"]]
    present = {name: sum(1 for r in received if r.get(name)) for name in HANDOFF_FIELDS}
    complete = sum(1 for r in received if all(r.get(n) for n in HANDOFF_FIELDS))
    return {"received": len(received),
            "fields": {n: _ratio(c, len(received)) for n, c in present.items()},
            "complete": _ratio(complete, len(received)),
            "mean_field_share": _ratio(sum(present.values()),
                                       len(received) * len(HANDOFF_FIELDS))}


def diversion_figures(tickets: Iterable[Row], transfers: Iterable[Row]) -> dict[str, Any]:
    received = Counter(f"{r['origin']}->{r['platform']}" for r in tickets
                       if r.get("origin") and r["origin"] != r["platform"])
    sent = Counter(r["direction"] for r in transfers
                   if r.get("direction") and r["status"] == "completed")
    return {"received": dict(sorted(received.items())), "sent": dict(sorted(sent.items()))}


def _key_fn(group_by: Sequence[str], t: Thresholds) -> Callable[[Row, str], dict[str, str]]:
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {unknown}; choose from {GROUPS}")
    tz = ZoneInfo(t.timezone)

    def key(row: Row, at: str) -> dict[str, str]:
        out = {}
        when = dt.datetime.fromtimestamp(row[at], tz) if row.get(at) is not None else None
        for g in group_by:
            if g == "day":
                out[g] = when.date().isoformat() if when else ""
            elif g == "hour":
                out[g] = when.strftime("%Y-%m-%dT%H:00") if when else ""
            else:
                out[g] = str(row.get(g) or "")
        return out

    return key


def figures(tickets: Sequence[Row], transfers: Sequence[Row],
            conferences: Sequence[Row] = (), *, group_by: Sequence[str] = ("platform",),
            thresholds: Thresholds | None = None) -> dict[str, Any]:
    """Every figure, per group. Tickets group by when they were opened; transfers by
    when they were initiated (a ticket row has no direction: grouping by direction
    splits the transfer figures only)."""
    t = thresholds or Thresholds()
    key = _key_fn(group_by, t)
    ticket_keys = [g for g in group_by if g != "direction"]
    groups: dict[tuple[tuple[str, str], ...], dict[str, list[Row]]] = defaultdict(
        lambda: {"tickets": [], "transfers": []})
    for row in tickets:
        k = key(row, "opened_at")
        groups[tuple((g, k[g]) for g in ticket_keys)]["tickets"].append(row)
    for row in transfers:
        k = key(row, "initiated_at")
        if "queue" in k:
            k["queue"] = ""  # a transfer row has no queue; its ticket's group keeps it
        groups[tuple((g, k[g]) for g in ticket_keys)]["transfers"].append(row)
    confs = _by_ticket(conferences)  # once, not once per group
    out = []
    for gkey, rows in sorted(groups.items()):
        ts = rows["tickets"]
        out.append({
            "group": dict(gkey), "tickets": len(ts),
            "outcomes": dict(sorted(Counter(r.get("outcome") for r in ts).items())),
            "answer": answer_figures(ts, t),
            "transfers": transfer_figures(rows["transfers"]),
            "three_party": three_party_figures(ts, confs),
            "handoff": handoff_figures(ts),
            "diversions": diversion_figures(ts, rows["transfers"]),
        })
    return {"thresholds": asdict(t), "group_by": list(group_by), "groups": out}

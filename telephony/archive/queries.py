"""The archive's read side: ticket search, one ticket's rows and trace, bulk export.

Pure, except the few `fetch_*` functions that take an asyncpg connection:
- query parameters -> a validated `TicketQuery` (`parse_search`, `parse_export`);
- a `TicketQuery` -> a SQL WHERE clause with `$n` parameters (`where_clause`): a
  value never goes into the SQL text, only column names from this module do;
- the keyset cursor: URL-safe base64 of the last row's (opened_at, platform,
  ticket_id), the order every search walks in, so a page starts exactly after
  the previous one (no offset, no duplicates, no gaps while rows are added);
- rows -> JSON (times as epoch seconds, like the rest of the API) and CSV cells
  (ISO 8601 UTC, guarded against spreadsheet formulas).
Tables and columns: telephony/archive/migrations/001_archive.sql.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from telephony.archive.measures import GROUPS
from telephony.archive.record import OUTCOMES
from telephony.control import validation
from telephony.control.errors import BadInput, Unprocessable

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
DEFAULT_WINDOW = dt.timedelta(hours=24)  # a search without `from` looks this far back
MAX_EXPORT_WINDOW = dt.timedelta(days=31)
EXPORT_FORMATS = ("csv", "jsonl")
QUERY_TIMEOUT_S = 15.0

# archive_tickets in the order the API, the CSV header and JSON Lines give them.
TICKET_COLUMNS = (
    "platform", "ticket_id", "origin", "category", "callback", "division", "urgency",
    "summary", "queue", "agents", "opened_at", "closed_at", "queued_at", "answered_at",
    "abandoned_at", "outcome", "negotiation", "police_first", "transfers", "steps",
    "archived_at")
# Filters that are one column's equality; `agent` matches the agents array.
EQUALITY_FILTERS = ("platform", "category", "division", "outcome", "origin")
FILTERS = (*EQUALITY_FILTERS, "agent")
SEARCH_PARAMS = frozenset(("from", "to", *FILTERS, "limit", "cursor"))
EXPORT_PARAMS = frozenset(("from", "to", *FILTERS, "format"))
ORDER = "opened_at, platform, ticket_id"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_DIVISION = re.compile(r"^(?:[0-9]{6}|[0-9]{12})$")  # GB/T 2260: county, or down to village
_EPOCH_SECONDS = re.compile(r"^[0-9]{1,11}(?:\.[0-9]{1,6})?$")
_LIMIT = re.compile(r"^[0-9]{1,6}$")
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula


# --- the keyset cursor ------------------------------------------------------------------
@dataclass(frozen=True)
class Cursor:
    """The last row of a page: the next page starts strictly after it."""

    opened_at: dt.datetime
    platform: str
    ticket_id: str


def encode_cursor(cursor: Cursor) -> str:
    """Opaque and URL-safe; the time goes as whole microseconds, so it comes back exact."""
    micros = (cursor.opened_at - _EPOCH) // _MICROSECOND
    raw = orjson.dumps([micros, cursor.platform, cursor.ticket_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> Cursor:
    """The cursor a previous page gave as `next_cursor`; 400 invalid_cursor otherwise."""
    bad = BadInput("cursor is not one this API gave out (use next_cursor as it is)",
                   code="invalid_cursor")
    if not _CURSOR.match(text):
        raise bad
    try:
        value = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not (isinstance(value, list) and len(value) == 3 and type(value[0]) is int
            and all(isinstance(v, str) and validation.TOKEN_RE.match(v) for v in value[1:])):
        raise bad
    try:
        opened_at = _EPOCH + value[0] * _MICROSECOND
    except OverflowError:
        raise bad from None
    return Cursor(opened_at, value[1], value[2])


def cursor_of(row: Mapping[str, Any]) -> Cursor:
    return Cursor(row["opened_at"], row["platform"], row["ticket_id"])


# --- parameters -> TicketQuery ----------------------------------------------------------
@dataclass(frozen=True)
class TicketQuery:
    """Tickets opened in [since, until), matching every filter that is set."""

    since: dt.datetime
    until: dt.datetime
    platform: str | None = None
    category: str | None = None
    division: str | None = None
    outcome: str | None = None
    agent: str | None = None
    origin: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None


def parse_time(raw: str, name: str) -> dt.datetime:
    """ISO 8601 with a UTC offset (2025-05-01T08:00:00+08:00, ...Z) or epoch seconds."""
    bad = BadInput(f"{name} must be ISO 8601 with an offset (e.g. 2025-05-01T08:00:00+08:00)"
                   " or epoch seconds", code=f"invalid_{name}", value=raw[:40])
    try:
        if _EPOCH_SECONDS.match(raw):
            return _EPOCH + dt.timedelta(seconds=float(raw))
        if len(raw) > 40 or not raw[:4].isdigit():
            raise bad
        when = dt.datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        raise bad from None
    if when.tzinfo is None:  # a wall-clock time is ambiguous between UTC and China time
        raise bad
    return when.astimezone(dt.UTC)


def _single_values(items: Iterable[tuple[str, str]], allowed: frozenset[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            raise BadInput(f"unknown query parameter {name[:40]!r}", code="unknown_parameter",
                           allowed=sorted(allowed))
        if name in values:
            raise BadInput(f"{name} given more than once", code="repeated_parameter")
        values[name] = value
    return {name: value for name, value in values.items() if value != ""}


def _filters(values: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FILTERS:
        raw = values.get(name)
        if raw is None:
            continue
        if name == "division":
            if not _DIVISION.match(raw):
                raise Unprocessable("division must be a GB/T 2260 code of 6 or 12 digits",
                                    code="invalid_division", value=raw[:40])
        elif name == "outcome":
            if raw not in OUTCOMES:
                raise Unprocessable(f"outcome must be one of {', '.join(OUTCOMES)}",
                                    code="invalid_outcome", value=raw[:40])
        else:
            validation.token(raw, name)
        out[name] = raw
    return out


def _window(values: Mapping[str, str], now: float, *,
            required: bool) -> tuple[dt.datetime, dt.datetime]:
    if required and not ("from" in values and "to" in values):
        raise Unprocessable(f"an export needs both from and to (at most "
                            f"{MAX_EXPORT_WINDOW.days} days apart)", code="window_required")
    until = (parse_time(values["to"], "to") if "to" in values
             else _EPOCH + dt.timedelta(seconds=now))
    since = parse_time(values["from"], "from") if "from" in values else until - DEFAULT_WINDOW
    if since >= until:
        raise Unprocessable("from must be before to", code="invalid_window")
    return since, until


SLA_PARAMS = frozenset(("from", "to", "platform", "group_by"))
MAX_SLA_WINDOW = dt.timedelta(days=62)  # two months: the figures are computed in Python


@dataclass(frozen=True)
class SlaQuery:
    since: dt.datetime
    until: dt.datetime
    platform: str | None
    group_by: tuple[str, ...]


def parse_sla(items: Iterable[tuple[str, str]], now: float) -> SlaQuery:
    """GET /sla parameters: the window (default the last 24 h), platform, group_by
    (comma-separated, from measures.GROUPS; default platform)."""
    values = _single_values(items, SLA_PARAMS)
    since, until = _window(values, now, required=False)
    if until - since > MAX_SLA_WINDOW:
        raise Unprocessable(f"the window may span at most {MAX_SLA_WINDOW.days} days",
                            code="window_too_long")
    platform = validation.token(values["platform"], "platform") if "platform" in values \
        else None
    groups = tuple(g for g in values.get("group_by", "platform").split(",") if g)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or len(set(groups)) != len(groups):
        raise Unprocessable(f"group_by takes distinct names from {', '.join(GROUPS)}",
                            code="invalid_group_by", value=values.get("group_by", "")[:60])
    return SlaQuery(since, until, platform, groups or ("platform",))


def parse_search(items: Iterable[tuple[str, str]], now: float) -> TicketQuery:
    """GET /tickets parameters (every pair, repeated ones included); `now` in epoch s."""
    values = _single_values(items, SEARCH_PARAMS)
    since, until = _window(values, now, required=False)
    limit = DEFAULT_LIMIT
    if "limit" in values:
        if not _LIMIT.match(values["limit"]):
            raise BadInput("limit must be a whole number", code="invalid_limit")
        limit = int(values["limit"])
        if not 1 <= limit <= MAX_LIMIT:
            raise Unprocessable(f"limit must be 1 to {MAX_LIMIT}", code="invalid_limit",
                                value=limit)
    cursor = decode_cursor(values["cursor"]) if "cursor" in values else None
    return TicketQuery(since, until, limit=limit, cursor=cursor, **_filters(values))


def parse_export(items: Iterable[tuple[str, str]], now: float) -> tuple[TicketQuery, str]:
    """GET /tickets/export parameters: the same filters, a required window, a format."""
    values = _single_values(items, EXPORT_PARAMS)
    fmt = values.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        raise Unprocessable("format must be csv or jsonl", code="invalid_format",
                            value=fmt[:40])
    since, until = _window(values, now, required=True)
    if until - since > MAX_EXPORT_WINDOW:
        raise Unprocessable(f"an export covers at most {MAX_EXPORT_WINDOW.days} days",
                            code="window_too_long")
    return TicketQuery(since, until, **_filters(values)), fmt


# --- TicketQuery -> SQL -----------------------------------------------------------------
def where_clause(query: TicketQuery) -> tuple[str, list[Any]]:
    """`opened_at >= $1 AND ...` and its parameters, in $n order."""
    params: list[Any] = [query.since, query.until]
    conds = ["opened_at >= $1", "opened_at < $2"]

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    for column in EQUALITY_FILTERS:
        value = getattr(query, column)
        if value is not None:
            conds.append(f"{column} = {param(value)}")
    if query.agent is not None:
        conds.append(f"agents @> ARRAY[{param(query.agent)}]::text[]")  # the GIN index
    if query.cursor is not None:
        at = param(query.cursor.opened_at)
        # The plain bound lets the (platform, opened_at, ticket_id) index skip earlier pages.
        conds.append(f"opened_at >= {at}")
        conds.append(f"({ORDER}) > ({at}, {param(query.cursor.platform)}, "
                     f"{param(query.cursor.ticket_id)})")
    return " AND ".join(conds), params


def search_sql(query: TicketQuery) -> tuple[str, list[Any]]:
    """One page and one row more (whether there is a next page)."""
    where, params = where_clause(query)
    params.append(query.limit + 1)
    return (f"SELECT {', '.join(TICKET_COLUMNS)} FROM archive_tickets WHERE {where} "
            f"ORDER BY {ORDER} LIMIT ${len(params)}", params)


def export_sql(query: TicketQuery) -> tuple[str, list[Any]]:
    where, params = where_clause(query)
    return (f"SELECT {', '.join(TICKET_COLUMNS)} FROM archive_tickets WHERE {where} "
            f"ORDER BY {ORDER}", params)


def page(rows: Sequence[Mapping[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The page's tickets as JSON and the cursor of the next page (None: this is the last)."""
    more = len(rows) > limit
    shown = rows[:limit]
    next_cursor = encode_cursor(cursor_of(shown[-1])) if more and shown else None
    return [ticket_json(row) for row in shown], next_cursor


# --- rows -> JSON, CSV ----------------------------------------------------------------
def epoch(value: Any) -> Any:
    """A datetime as epoch seconds (µs); anything else as it is."""
    return round(value.timestamp(), 6) if isinstance(value, dt.datetime) else value


def ticket_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An archive_tickets row (or a live one built from Redis) as the API gives it."""
    out = {name: epoch(row.get(name)) for name in TICKET_COLUMNS}
    out["agents"] = list(out["agents"] or ())
    return out


def row_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A call, leg, transfer or conference row; its platform and ticket are the envelope's."""
    return {k: epoch(v) for k, v in row.items() if k not in ("platform", "ticket_id")}


def step_json(row: Mapping[str, Any]) -> dict[str, Any]:
    data = row["data"]
    return {"step_id": row["step_id"], "at": epoch(row["at"]), "kind": row["kind"],
            "call_id": row["call_id"], "leg": row["leg"],
            "data": orjson.loads(data) if isinstance(data, str | bytes) else dict(data)}


def csv_cell(value: Any) -> str:
    """One CSV cell: times ISO 8601 UTC, lists joined by ';', and a leading apostrophe on
    text a spreadsheet would read as a formula (= + - @, tab, CR)."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).isoformat()
    elif isinstance(value, list | tuple):
        text = ";".join(str(v) for v in value)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class CsvEncoder:
    """RFC 4180 lines (the csv module's quoting, CRLF) one row at a time, for a stream."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def line(self, cells: Iterable[Any]) -> str:
        self._writer.writerow(cells)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def header(self) -> str:
        return self.line(TICKET_COLUMNS)

    def ticket(self, row: Mapping[str, Any]) -> str:
        return self.line(csv_cell(row[name]) for name in TICKET_COLUMNS)


def jsonl_line(row: Mapping[str, Any]) -> bytes:
    return orjson.dumps(ticket_json(row)) + b"\n"


# --- reads ------------------------------------------------------------------------------
_DETAIL_TABLES = (
    # (key in the response, table, order)
    ("calls", "archive_calls", "started_at, call_id"),
    ("legs", "archive_legs", "created_at NULLS LAST, leg_id"),
    ("transfers", "archive_transfers", "initiated_at, transfer_id"),
    ("conferences", "archive_conferences", "started_at NULLS LAST, name"),
)


async def fetch_ticket(conn: asyncpg.Connection, platform: str,
                       ticket_id: str) -> dict[str, Any] | None:
    """One archived ticket with its calls, legs, transfers and conferences, read as of one
    moment (a re-archive replaces rows in one transaction); None when it is not there."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ticket = await conn.fetchrow(
            f"SELECT {', '.join(TICKET_COLUMNS)} FROM archive_tickets "
            "WHERE platform = $1 AND ticket_id = $2", platform, ticket_id,
            timeout=QUERY_TIMEOUT_S)
        if ticket is None:
            return None
        out: dict[str, Any] = {"ticket": ticket_json(ticket)}
        for key, table, order in _DETAIL_TABLES:
            rows = await conn.fetch(f"SELECT * FROM {table} WHERE platform = $1 AND "
                                    f"ticket_id = $2 ORDER BY {order}", platform, ticket_id,
                                    timeout=QUERY_TIMEOUT_S)
            out[key] = [row_json(r) for r in rows]
    return out


async def fetch_steps(conn: asyncpg.Connection, platform: str,
                      ticket_id: str) -> list[dict[str, Any]]:
    """Every archived step of the ticket, in timeline order (empty: not archived)."""
    rows = await conn.fetch(
        "SELECT step_id, at, kind, call_id, leg, data FROM archive_steps "
        "WHERE platform = $1 AND ticket_id = $2 ORDER BY at, step_id", platform, ticket_id,
        timeout=QUERY_TIMEOUT_S)
    return [step_json(r) for r in rows]

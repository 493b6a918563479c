"""The archive's read side, pure parts and the HTTP layer over fake pools (no PostgreSQL).

The real thing (SIPp calls archived into the lab's PostgreSQL, then searched,
paged, exported and traced) is tests/integration/test_archive_api_lab.py.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientPayloadError
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from telephony.api import archive as archive_api
from telephony.api.app import create_app
from telephony.api.tokens import TokenTable
from telephony.archive import queries
from telephony.archive.queries import Cursor, TicketQuery
from telephony.archive.record import OUTCOMES
from telephony.control.controller import Controller
from telephony.control.errors import ControlError
from telephony.control.protocols import InMemoryOpStore
from telephony.control.targets import TargetPolicy
from telephony.control.testing import FakeDirectory, FakeSender

UTC = dt.UTC
NOW = 1_746_057_600.0  # 2025-05-01T00:00:00Z
T0 = dt.datetime(2025, 5, 1, tzinfo=UTC)


def error_code(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ControlError) as caught:
        call(*args, **kwargs)
    return caught.value.status, caught.value.code


# --- the cursor ----------------------------------------------------------------------
tokens = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


@given(at=st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 1, 1),
                       timezones=st.just(UTC)), platform=tokens, ticket_id=tokens)
def test_a_cursor_comes_back_exactly_and_is_url_safe(at: dt.datetime, platform: str,
                                                     ticket_id: str) -> None:
    cursor = Cursor(at, platform, ticket_id)
    text = queries.encode_cursor(cursor)
    assert queries.decode_cursor(text) == cursor  # to the microsecond: no float on the way
    assert text.isascii() and not set(text) - set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_a_cursor_in_another_time_zone_is_the_same_instant() -> None:
    china = dt.datetime(2025, 5, 1, 8, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    back = queries.decode_cursor(queries.encode_cursor(Cursor(china, "12345", "T1")))
    assert back.opened_at == china and back.opened_at.utcoffset() == dt.timedelta(0)


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("text", [
    "", "not base64!", "a" * 401, "%%%", _b64({"at": 1}), _b64([1, "12345"]),
    _b64([1.5, "12345", "T1"]), _b64(["1", "12345", "T1"]), _b64([True, "12345", "T1"]),
    _b64([1, "12345", "T 1"]), _b64([1, "", "T1"]), _b64([10**20, "12345", "T1"]),
    _b64([1, "12345", "T1", "extra"]), _b64([2**63 - 1, "12345", "T1"]), "AAAA",
])
def test_a_cursor_not_given_out_by_the_api_is_400(text: str) -> None:
    assert error_code(queries.decode_cursor, text) == (400, "invalid_cursor")


# --- filters -> SQL ------------------------------------------------------------------
def test_no_filter_is_only_the_window() -> None:
    q = TicketQuery(T0, T0 + dt.timedelta(days=1))
    assert queries.where_clause(q) == ("opened_at >= $1 AND opened_at < $2",
                                       [q.since, q.until])


def test_every_filter_is_a_numbered_parameter_in_order() -> None:
    cursor = Cursor(T0 + dt.timedelta(hours=1), "110", "T110-1")
    q = TicketQuery(T0, T0 + dt.timedelta(days=1), platform="12345", category="ivr.complaint",
                    division="110101", outcome="transferred", agent="agent12345-1",
                    origin="12345", cursor=cursor)
    where, params = queries.where_clause(q)
    assert where == (
        "opened_at >= $1 AND opened_at < $2 AND platform = $3 AND category = $4"
        " AND division = $5 AND outcome = $6 AND origin = $7"
        " AND agents @> ARRAY[$8]::text[] AND opened_at >= $9"
        " AND (opened_at, platform, ticket_id) > ($9, $10, $11)")
    assert params == [q.since, q.until, "12345", "ivr.complaint", "110101", "transferred",
                      "12345", "agent12345-1", cursor.opened_at, "110", "T110-1"]


def test_values_never_enter_the_sql_text() -> None:
    evil = "x' OR '1'='1"
    q = TicketQuery(T0, T0 + dt.timedelta(days=1), category=evil, agent=evil, origin=evil,
                    cursor=Cursor(T0, evil, evil))
    for sql, params in (queries.where_clause(q), queries.search_sql(q), queries.export_sql(q)):
        assert "'" not in sql and evil in params


def test_search_asks_one_row_more_than_the_page_and_export_has_no_limit() -> None:
    q = TicketQuery(T0, T0 + dt.timedelta(days=1), outcome="answered", limit=25)
    sql, params = queries.search_sql(q)
    assert sql.endswith("ORDER BY opened_at, platform, ticket_id LIMIT $4") and params[-1] == 26
    assert sql.startswith(f"SELECT {', '.join(queries.TICKET_COLUMNS)} FROM archive_tickets")
    export, export_params = queries.export_sql(q)
    assert "LIMIT" not in export and export.endswith("ORDER BY opened_at, platform, ticket_id")
    assert export_params == params[:-1]


def row(n: int, platform: str = "12345", **more: Any) -> dict[str, Any]:
    base = {name: "" for name in queries.TICKET_COLUMNS}
    base.update(platform=platform, ticket_id=f"T{platform}-{n}", agents=["agent12345-1"],
                opened_at=T0 + dt.timedelta(seconds=n), closed_at=T0 + dt.timedelta(seconds=n + 9),
                queued_at=None, answered_at=None, abandoned_at=None, archived_at=None,
                outcome="answered", police_first=False, transfers=0, steps=5)
    base.update(more)
    return base


def test_a_page_gives_the_cursor_of_its_last_row_only_when_there_is_more() -> None:
    rows = [row(n) for n in range(4)]
    tickets, cursor = queries.page(rows, 3)
    assert [t["ticket_id"] for t in tickets] == ["T12345-0", "T12345-1", "T12345-2"]
    assert cursor is not None and queries.decode_cursor(cursor) == Cursor(
        rows[2]["opened_at"], "12345", "T12345-2")
    assert queries.page(rows, 4)[1] is None and queries.page([], 4) == ([], None)
    assert tickets[0]["opened_at"] == NOW and tickets[0]["agents"] == ["agent12345-1"]


# --- CSV -------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "cell"), [
    ('=HYPERLINK("http://x")', "'=HYPERLINK(\"http://x\")"),
    ("+8613800000001", "'+8613800000001"),
    ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\r=1", "'\r=1"),
    ("市民投诉=噪音", "市民投诉=噪音"), ("13800000001", "13800000001"), ("", ""), (None, ""),
    (True, "true"), (False, "false"), (3, "3"), (["agent12345-1", "agent12345-2"],
                                                 "agent12345-1;agent12345-2"),
    (["=cmd"], "'=cmd"),
    (dt.datetime(2025, 5, 1, 8, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=8))),
     "2025-05-01T00:00:00.000005+00:00"),
])
def test_csv_cells_and_the_formula_guard(value: Any, cell: str) -> None:
    assert queries.csv_cell(value) == cell


def test_csv_lines_are_rfc4180_and_read_back() -> None:
    encoder = queries.CsvEncoder()
    tricky = row(1, summary='他说："水管破了",\r\n请尽快', callback="=1+2", category="a,b")
    text = "".join([encoder.header(), encoder.ticket(tricky), encoder.ticket(row(2))])
    assert text.count("\r\n") >= 3 and '"他说：""水管破了"",\r\n请尽快"' in text
    header, first, second = list(csv.reader(io.StringIO(text, newline="")))
    assert header == list(queries.TICKET_COLUMNS)
    got = dict(zip(header, first, strict=True))
    assert got["summary"] == '他说："水管破了",\r\n请尽快' and got["callback"] == "'=1+2"
    assert got["category"] == "a,b" and got["opened_at"] == "2025-05-01T00:00:01+00:00"
    assert got["queued_at"] == "" and second[1] == "T12345-2"


def test_jsonl_is_one_ticket_object_a_line() -> None:
    line = queries.jsonl_line(row(1, summary="噪音\n扰民"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == queries.ticket_json(row(1, summary="噪音\n扰民"))


# --- parameters -----------------------------------------------------------------------
def search(**params: str) -> TicketQuery:
    return queries.parse_search(params.items(), NOW)


def test_search_defaults_to_the_last_24_hours_and_100_rows() -> None:
    q = search()
    assert (q.until, q.since, q.limit, q.cursor) == (T0, T0 - dt.timedelta(hours=24), 100, None)
    assert search(to="1746000000").since == dt.datetime(2025, 4, 29, 8, tzinfo=UTC)
    assert search(platform="", agent="").platform is None  # empty is not given


@pytest.mark.parametrize(("raw", "when"), [
    ("1746057600", T0), ("1746057600.5", T0 + dt.timedelta(milliseconds=500)),
    ("2025-05-01T08:00:00+08:00", T0), ("2025-05-01T00:00:00Z", T0),
    ("2025-05-01T00:00:00.000001+00:00", T0 + dt.timedelta(microseconds=1)),
])
def test_times_are_iso_with_an_offset_or_epoch_seconds(raw: str, when: dt.datetime) -> None:
    assert queries.parse_time(raw, "from") == when
    assert search(**{"from": raw, "to": "2025-05-02T00:00:00Z"}).since == when


@pytest.mark.parametrize("raw", ["2025-05-01T08:00:00", "2025-05-01", "yesterday", "-5",
                                 "1e9", "1746057600.1234567", "99999999999999",
                                 "２０２５-05-01T00:00:00Z", "2025-13-01T00:00:00Z"])
def test_a_time_that_is_not_one_is_400(raw: str) -> None:
    assert error_code(search, **{"from": raw}) == (400, "invalid_from")
    assert error_code(search, to=raw) == (400, "invalid_to")


@pytest.mark.parametrize(("params", "expected"), [
    ({"from": "1746057600", "to": "1746057600"}, (422, "invalid_window")),
    ({"from": "1746057601", "to": "1746057600"}, (422, "invalid_window")),
    ({"from": "2025-05-02T00:00:00Z"}, (422, "invalid_window")),  # after now
    ({"limit": "0"}, (422, "invalid_limit")), ({"limit": "501"}, (422, "invalid_limit")),
    ({"limit": "ten"}, (400, "invalid_limit")), ({"limit": "-1"}, (400, "invalid_limit")),
    ({"division": "11010"}, (422, "invalid_division")),
    ({"division": "1101011"}, (422, "invalid_division")),
    ({"division": "11010a"}, (422, "invalid_division")),
    ({"division": "１１０１０１"}, (422, "invalid_division")),  # full-width digits
    ({"outcome": "won"}, (422, "invalid_outcome")),
    ({"agent": "agent 1"}, (422, "invalid_agent")),
    ({"platform": "../x"}, (422, "invalid_platform")),
    ({"category": "x" * 65}, (422, "invalid_category")),
    ({"origin": "-110"}, (422, "invalid_origin")),
    ({"cursor": "!!"}, (400, "invalid_cursor")),
    ({"outcomes": "answered"}, (400, "unknown_parameter")),
    ({"format": "csv"}, (400, "unknown_parameter")),
])
def test_bad_search_parameters(params: dict[str, str], expected: tuple[int, str]) -> None:
    assert error_code(search, **params) == expected


def test_a_repeated_parameter_is_400_not_the_first_one_silently() -> None:
    items = [("outcome", "answered"), ("outcome", "abandoned")]
    assert error_code(queries.parse_search, items, NOW) == (400, "repeated_parameter")


def test_every_filter_and_outcome_is_accepted() -> None:
    for outcome in OUTCOMES:
        assert search(outcome=outcome).outcome == outcome
    q = search(platform="110", category="ivr.complaint", division="110101001001",
               agent="agent110-1", origin="12345", limit="500")
    assert (q.platform, q.category, q.division, q.agent, q.origin, q.limit) == (
        "110", "ivr.complaint", "110101001001", "agent110-1", "12345", 500)
    cursor = queries.encode_cursor(Cursor(T0, "110", "T1"))
    assert search(cursor=cursor).cursor == Cursor(T0, "110", "T1")


def export(**params: str) -> tuple[TicketQuery, str]:
    return queries.parse_export(params.items(), NOW)


def test_an_export_needs_a_window_of_at_most_31_days() -> None:
    month = {"from": "2025-04-01T00:00:00+08:00", "to": "2025-05-02T00:00:00+08:00"}
    q, fmt = export(**month)
    assert fmt == "csv" and q.until - q.since == dt.timedelta(days=31)
    assert export(**month, format="jsonl", outcome="answered")[0].outcome == "answered"
    assert error_code(export) == (422, "window_required")
    assert error_code(export, **{"from": month["from"]}) == (422, "window_required")
    assert error_code(export, **{**month, "to": "2025-05-02T00:00:01+08:00"}) == (
        422, "window_too_long")
    assert error_code(export, **month, format="xlsx") == (422, "invalid_format")
    assert error_code(export, **month, limit="10") == (400, "unknown_parameter")
    assert error_code(export, **month, cursor="x") == (400, "unknown_parameter")


def test_step_rows_from_postgres_and_from_redis_look_the_same() -> None:
    archived = {"step_id": "1-0", "at": T0, "kind": "queue.joined", "call_id": "c1", "leg": "l1",
                "data": '{"queue": "q12345"}'}
    live = {**archived, "at": NOW, "data": {"queue": "q12345"}, "platform": "12345"}
    assert queries.step_json(archived) == queries.step_json(live) == {
        "step_id": "1-0", "at": NOW, "kind": "queue.joined", "call_id": "c1", "leg": "l1",
        "data": {"queue": "q12345"}}


# --- the HTTP layer over fake pools ----------------------------------------------------
SUP, SUP110, AGENT, ADMIN = ("sup-token-0123456789", "sup110-token-01234567",
                             "agent-token-012345678", "admin-token-012345678")
TOKENS = TokenTable.from_config({"tokens": [
    {"token": SUP, "role": "supervisor", "subject": "sup", "platform": "12345"},
    {"token": SUP110, "role": "supervisor", "subject": "sup110", "platform": "110"},
    {"token": AGENT, "role": "agent", "subject": "agent12345-1", "platform": "12345"},
    {"token": ADMIN, "role": "admin", "subject": "root", "platform": "12345"},
]})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakeCursor:
    def __init__(self, rows: list[dict[str, Any]], fail_on_fetch: int | None) -> None:
        self.rows, self.fail_on_fetch, self.fetches = rows, fail_on_fetch, 0

    async def fetch(self, n: int, **options: Any) -> list[dict[str, Any]]:
        self.fetches += 1
        if self.fetches == self.fail_on_fetch:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed mid-export")
        out, self.rows = self.rows[:n], self.rows[n:]
        return out


class FakeConn:
    def __init__(self, pool: FakePool) -> None:
        self.pool = pool

    def transaction(self, **options: Any) -> contextlib.nullcontext[None]:
        self.pool.transactions.append(options)
        return contextlib.nullcontext()

    async def fetch(self, sql: str, *params: Any, **options: Any) -> list[Any]:
        self.pool.queries.append((sql, params))
        if "FROM archive_tickets" in sql and "LIMIT" in sql:  # a search
            return self.pool.rows[:params[-1]]
        return []  # no steps, calls or legs: nothing archived

    async def cursor(self, sql: str, *params: Any) -> FakeCursor:
        self.pool.queries.append((sql, params))
        return FakeCursor(list(self.pool.rows), self.pool.fail_on_fetch)


class FakePool:
    def __init__(self, rows: list[dict[str, Any]] = (), fail_on_fetch: int | None = None) -> None:
        self.rows, self.fail_on_fetch = list(rows), fail_on_fetch
        self.queries: list[tuple[str, tuple[Any, ...]]] = []
        self.transactions: list[dict[str, Any]] = []

    @contextlib.asynccontextmanager
    async def acquire(self, **options: Any) -> AsyncIterator[FakeConn]:
        yield FakeConn(self)


class FakeTimeline:
    platform = "12345"

    def __init__(self) -> None:
        self.entries: dict[str, list[tuple[str, dict[str, str]]]] = {}

    async def timeline(self, ticket_id: str, start: str = "-",
                       count: int = 1000) -> list[tuple[str, dict[str, str]]]:
        entries = self.entries.get(ticket_id, [])
        if start.startswith("("):
            entries = [e for e in entries if e[0] > start[1:]]
        return entries[:count]


def controller() -> Controller:
    return Controller(platform="12345", directory=FakeDirectory(), sender=FakeSender(),
                      store=InMemoryOpStore(), targets=TargetPolicy("12345"))


@contextlib.asynccontextmanager
async def serving(pool: Any, store: Any = None,
                  active: Any = archive_api._never) -> AsyncIterator[TestClient]:
    archive = archive_api.ArchiveApi(pool, store or FakeTimeline(), active)
    app = create_app(controller(), TOKENS, archive=archive)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def provider(pool: Any) -> Any:
    async def get() -> Any:
        return pool
    return get


async def error_of(resp: Any) -> tuple[int, str]:
    return resp.status, (await resp.json())["error"]["code"]


async def test_roles_and_parameters_are_checked_before_the_database_is_asked() -> None:
    pool = FakePool()
    async with serving(provider(pool)) as client:
        for path in ("/api/v1/tickets", "/api/v1/tickets/T1", "/api/v1/tickets/T1/timeline",
                     "/api/v1/tickets/export?from=1&to=2"):
            assert await error_of(await client.get(path, headers=auth(AGENT))) == (
                403, "supervisor_only")
            assert await error_of(await client.get(path, headers=auth(SUP110))) == (
                403, "supervisor_only")  # a 110 supervisor on the 12345 service
            assert (await client.get(path)).status == 401
        bad = [("/api/v1/tickets?limit=0", (422, "invalid_limit")),
               ("/api/v1/tickets?from=tomorrow", (400, "invalid_from")),
               ("/api/v1/tickets?platform=110", (403, "other_platform")),
               ("/api/v1/tickets/export", (422, "window_required")),
               ("/api/v1/tickets/T1?platform=110", (403, "other_platform")),
               ("/api/v1/tickets/T1?verbose=1", (400, "unknown_parameter")),
               ("/api/v1/tickets/T%20x", (422, "invalid_ticket_id"))]
        for path, expected in bad:
            assert await error_of(await client.get(path, headers=auth(SUP))) == expected, path
    assert pool.queries == []


async def test_a_supervisor_is_kept_to_its_platform_and_admin_is_not() -> None:
    pool = FakePool([row(n) for n in range(3)])
    async with serving(provider(pool)) as client:
        resp = await client.get("/api/v1/tickets?limit=2", headers=auth(SUP))
        page = await resp.json()
        admin = await client.get("/api/v1/tickets?outcome=answered", headers=auth(ADMIN))
    assert resp.status == 200 and [t["ticket_id"] for t in page["tickets"]] == [
        "T12345-0", "T12345-1"]
    assert queries.decode_cursor(page["next_cursor"]).ticket_id == "T12345-1"
    (sup_sql, sup_params), (admin_sql, admin_params) = pool.queries
    assert "platform = $3" in sup_sql and sup_params[2:] == ("12345", 3)
    assert "platform =" not in admin_sql and admin_params[2:] == ("answered", 101)
    assert admin.status == 200


async def test_postgres_down_is_503_the_rest_of_the_api_works_and_it_retries_later() -> None:
    attempts: list[float] = []
    clock = [100.0]

    async def refused() -> Any:
        attempts.append(clock[0])
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 15432)")

    lazy = archive_api.LazyPool(refused, retry_s=2.0, clock=lambda: clock[0])
    async with serving(lazy) as client:
        assert (await client.get("/healthz")).status == 200
        for path in ("/api/v1/tickets", "/api/v1/tickets/T1/timeline",
                     "/api/v1/tickets/export?from=1&to=2"):
            resp = await client.get(path, headers=auth(SUP))
            assert await error_of(resp) == (503, "archive_unavailable"), path
        assert attempts == [100.0]  # within retry_s: no new attempt, an answer at once
        clock[0] += 2.5
        assert (await client.get("/api/v1/tickets", headers=auth(SUP))).status == 503
        assert attempts == [100.0, 102.5]
    await lazy.close()


async def test_the_lazy_pool_is_made_once_and_closed() -> None:
    made: list[Any] = []

    class Pool:
        closed = False

        async def close(self) -> None:
            self.closed = True

        def terminate(self) -> None:
            raise AssertionError("a pool that closes in time is not terminated")

    async def make() -> Any:
        made.append(Pool())
        return made[-1]

    lazy = archive_api.LazyPool(make)
    assert made == []  # nothing before it is asked for
    first, second = await lazy(), await lazy()
    assert first is second and len(made) == 1
    await lazy.close()
    assert made[0].closed
    await lazy.close()  # twice is fine


async def test_a_ticket_on_a_live_call_is_read_from_redis() -> None:
    store = FakeTimeline()
    store.entries["T9"] = [
        (f"{1746057600000 + i}-0", {"kind": kind, "ts": f"{NOW + i:.6f}", "call_id": "c1",
                                     "leg": "l1", **data})
        for i, (kind, data) in enumerate([
            ("leg.created", {"channel": "PJSIP/citizen-00000001"}),
            ("queue.joined", {"queue": "q12345"}), ("queue.answered", {}),
            ("call.ended", {"duration": "2.0"})])]
    pool = FakePool()
    async with serving(provider(pool), store, active={"T9"}.__contains__) as client:
        detail = await (await client.get("/api/v1/tickets/T9", headers=auth(SUP))).json()
        timeline = await (await client.get("/api/v1/tickets/T9/timeline",
                                           headers=auth(ADMIN))).json()
        missing = await client.get("/api/v1/tickets/T8/timeline", headers=auth(SUP))
    # An active ticket never waits for PostgreSQL; an unknown one is looked up there.
    assert [params for _, params in pool.queries] == [("12345", "T8")]
    assert (detail["live"], detail["active"], detail["ticket"]["outcome"]) == (
        True, True, "answered")
    assert detail["ticket"]["queue"] == "q12345" and detail["calls"][0]["duration_s"] == 2.0
    assert timeline["source"] == "live" and [s["kind"] for s in timeline["steps"]] == [
        "leg.created", "queue.joined", "queue.answered", "call.ended"]
    assert timeline["steps"][1] == {"step_id": "1746057600001-0", "at": NOW + 1,
                                    "kind": "queue.joined", "call_id": "c1", "leg": "l1",
                                    "data": {"queue": "q12345"}}
    assert missing.status == 404  # not live, not archived (the fake has no step rows)


async def test_the_live_timeline_is_read_in_pages_to_its_end() -> None:
    store = FakeTimeline()
    n = archive_api.TIMELINE_PAGE * 2 + 7
    store.entries["T9"] = [(f"{1746057600000 + i:013d}-0",
                            {"kind": "op.spy.sent", "ts": f"{NOW + i / 1000:.6f}"})
                           for i in range(n)]
    async with serving(provider(FakePool()), store) as client:
        body = await (await client.get("/api/v1/tickets/T9/timeline", headers=auth(SUP))).json()
    assert body["source"] == "live" and len(body["steps"]) == n
    assert len({s["step_id"] for s in body["steps"]}) == n


async def test_an_export_streams_every_row_in_batches() -> None:
    rows = [row(n, summary="=danger" if n == 3 else "噪音") for n in range(2500)]
    pool = FakePool(rows)
    window = "from=2025-05-01T00:00:00Z&to=2025-05-02T00:00:00Z"
    async with serving(provider(pool)) as client:
        resp = await client.get(f"/api/v1/tickets/export?{window}", headers=auth(SUP))
        text = (await resp.read()).decode("utf-8-sig")
        jsonl = await client.get(f"/api/v1/tickets/export?{window}&format=jsonl",
                                 headers=auth(ADMIN))
        lines = (await jsonl.read()).splitlines()
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="tickets-12345-20250501T000000Z-20250502T000000Z.csv"')
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == list(queries.TICKET_COLUMNS) and len(parsed) == 2501
    assert parsed[4][queries.TICKET_COLUMNS.index("summary")] == "'=danger"
    assert jsonl.status == 200 and len(lines) == 2500
    assert orjson.loads(lines[-1])["ticket_id"] == "T12345-2499"
    assert pool.transactions == [{"isolation": "repeatable_read", "readonly": True}] * 2
    (_, sup_params), (_, admin_params) = pool.queries
    assert sup_params[2:] == ("12345",) and len(admin_params) == 2  # admin: every platform


async def test_an_export_cut_by_the_database_never_looks_complete() -> None:
    pool = FakePool([row(n) for n in range(2500)], fail_on_fetch=2)  # after the first batch
    async with serving(provider(pool)) as client:
        resp = await client.get("/api/v1/tickets/export?from=1746057600&to=1746144000",
                                headers=auth(SUP))
        assert resp.status == 200
        with pytest.raises(ClientPayloadError):
            await resp.read()
    # Before the first byte, the same failure is a plain 503.
    pool = FakePool([row(1)], fail_on_fetch=1)
    async with serving(provider(pool)) as client:
        resp = await client.get("/api/v1/tickets/export?from=1746057600&to=1746144000",
                                headers=auth(SUP))
        assert await error_of(resp) == (503, "archive_unavailable")


async def test_a_third_export_at_once_is_turned_away() -> None:
    async with serving(provider(FakePool([row(1)]))) as client:
        slots = client.app[archive_api.EXPORT_SLOTS]
        for _ in range(archive_api.EXPORTS_AT_ONCE):
            await slots.acquire()  # two exports streaming
        path = "/api/v1/tickets/export?from=1746057600&to=1746144000"
        assert await error_of(await client.get(path, headers=auth(SUP))) == (
            503, "too_many_exports")
        slots.release()
        assert (await client.get(path, headers=auth(SUP))).status == 200


def test_sla_parameters() -> None:
    now = 1_796_086_800.0
    q = queries.parse_sla([("group_by", "platform,hour"), ("platform", "110")], now)
    assert q.group_by == ("platform", "hour") and q.platform == "110"
    assert (q.until - q.since).total_seconds() == 24 * 3600
    assert queries.parse_sla([], now).group_by == ("platform",)
    for bad, code in [([("group_by", "agent")], "invalid_group_by"),
                      ([("group_by", "hour,hour")], "invalid_group_by"),
                      ([("from", "1700000000"), ("to", "1790000000")], "window_too_long"),
                      ([("platform", "1\r\n2")], "invalid_platform"),
                      ([("limit", "5")], "unknown_parameter")]:
        with pytest.raises(ControlError) as err:
            queries.parse_sla(bad, now)
        assert err.value.code == code, bad

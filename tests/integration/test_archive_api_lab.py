"""The archive's query API on the real lab: calls archived, then searched, paged, exported, traced.

Both services run in this process (telephony.lab.services); SIPp plays three
citizens and the agents, one of which presses *1 (one-key transfer to 110);
Asterisk 22 switches; the services' writer processes archive each ended
ticket into the lab's PostgreSQL. Every answer is checked against a plain
SELECT on the same database.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import time
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import orjson

from telephony.archive import db
from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import QUIET_IVR, running_services
from telephony.lab.sipp import citizen_call
from telephony.lab.topology import NODES
from telephony.service import PlatformService, lab_config

P12345, P110 = NODES["12345"].http_port, NODES["110"].http_port
SIP12345 = NODES["12345"].sip_port
COMPLAINT, CONSULT, UTILITY = [(1500, "2")], [(1500, "1")], [(1500, "3")]  # 12345 IVR keys


async def get(port: int, path: str, token: str,
              params: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{port}{path}", params=params,
            headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def get_json(port: int, path: str, token: str,
                   params: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, body = await get(port, path, token, params)
    return status, orjson.loads(body)


async def wait_archived(conn: asyncpg.Connection, wanted: set[tuple[str, str]],
                        within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        rows = await conn.fetch("SELECT platform, ticket_id FROM archive_tickets "
                                "WHERE ticket_id = ANY($1)", [t for _, t in wanted])
        missing = wanted - {(r["platform"], r["ticket_id"]) for r in rows}
        if not missing:
            return
        assert time.monotonic() < deadline, f"not archived: {missing}"
        await asyncio.sleep(0.3)


async def walk(port: int, token: str, params: dict[str, str]) -> tuple[list[Any], int]:
    """Every page of a search, following next_cursor: (tickets, number of pages)."""
    tickets: list[Any] = []
    cursor, pages = None, 0
    while True:
        status, body = await get_json(port, "/api/v1/tickets", token,
                                      {**params, **({"cursor": cursor} if cursor else {})})
        assert status == 200, body
        tickets += body["tickets"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return tickets, pages
        assert pages < 1000


def keys(tickets: list[Any]) -> list[tuple[str, str]]:
    return [(t["platform"], t["ticket_id"]) for t in tickets]


async def test_archived_calls_are_searched_paged_exported_and_traced(lab: Lab) -> None:
    admin, sup = lab.token_for("admin"), lab.token_for("supervisor12345")
    sup110, agent = lab.token_for("supervisor110"), lab.token_for("agent12345-1")
    since = dt.datetime.fromtimestamp(time.time() - 2, dt.UTC)
    conn = await db.connect(lab.postgres_dsn)
    try:
        async with running_services():
            # A: a complaint the 12345 agent moves to 110 with *1.
            async with logged_in_agent(lab, "12345", keys=[(2000, "*1")]) as first, \
                    logged_in_agent(lab, "110") as police:
                res_a = await citizen_call(number="12345", port=SIP12345, caller="13811110001",
                                           dtmf=COMPLAINT, talk_s=12)
                took = await first.wait_for_calls(1, ended=True)
                moved = await police.wait_for_calls(1, ended=True)
            # B and C: answered by another 12345 agent; B is read while it is live.
            async with logged_in_agent(lab, "12345", index=1) as second:
                call_b = asyncio.create_task(citizen_call(
                    number="12345", port=SIP12345, caller="13811110002", dtmf=CONSULT,
                    talk_s=6))
                ringing = await second.wait_for_calls(1, timeout_s=20)
                ticket_b = ringing[0].invite.headers["X-Ticket-Id"]
                await asyncio.sleep(1.0)  # answered, talking
                live_status, live = await get_json(P12345, f"/api/v1/tickets/{ticket_b}", sup)
                live_tl_status, live_tl = await get_json(
                    P12345, f"/api/v1/tickets/{ticket_b}/timeline", sup)
                res_b = await call_b
                res_c = await citizen_call(number="12345", port=SIP12345, caller="13811110003",
                                           dtmf=UTILITY, talk_s=2)
                calls = await second.wait_for_calls(2, ended=True)
            ticket_a = moved[0].invite.headers["X-Ticket-Id"]
            ticket_c = calls[1].invite.headers["X-Ticket-Id"]
            assert took[0].invite.headers["X-Ticket-Id"] == ticket_a
            await wait_archived(conn, {("12345", ticket_a), ("110", ticket_a),
                                       ("12345", ticket_b), ("12345", ticket_c)})
            until = dt.datetime.fromtimestamp(time.time() + 1, dt.UTC)
            window = {"from": since.isoformat(), "to": f"{until.timestamp():.6f}"}
            await check_api(conn, window, ticket_a, ticket_b, ticket_c,
                            admin=admin, sup=sup, sup110=sup110, agent=agent)
    finally:
        await conn.close()
    assert res_a.ok and res_b.ok and res_c.ok, (res_a.errors, res_b.errors, res_c.errors)
    # While B was on its call: read from Redis, not the archive.
    assert live_status == 200 and (live["live"], live["active"]) == (True, True), live
    assert live["ticket"]["callback"] == "13811110002" and live["ticket"]["archived_at"] is None
    assert live_tl_status == 200 and live_tl["source"] == "live" and live_tl["steps"]


async def check_api(conn: asyncpg.Connection, window: dict[str, str], a: str, b: str, c: str,
                    *, admin: str, sup: str, sup110: str, agent: str) -> None:
    lo, hi = (dt.datetime.fromisoformat(window["from"]),
              dt.datetime.fromtimestamp(float(window["to"]), dt.UTC))

    async def db_keys(extra: str = "", *args: Any) -> list[tuple[str, str]]:
        rows = await conn.fetch(
            "SELECT platform, ticket_id FROM archive_tickets WHERE opened_at >= $1 AND "
            f"opened_at < $2 {extra} ORDER BY opened_at, platform, ticket_id", lo, hi, *args)
        return [(r["platform"], r["ticket_id"]) for r in rows]

    async def search(token: str, port: int = P12345, **filters: str) -> list[tuple[str, str]]:
        status, body = await get_json(port, "/api/v1/tickets", token,
                                      {**window, "limit": "500", **filters})
        assert status == 200, body
        assert body["next_cursor"] is None
        return keys(body["tickets"])

    # The time range finds them all, in order; a supervisor sees its own platform only.
    everything = await db_keys()
    assert {("12345", a), ("110", a), ("12345", b), ("12345", c)} <= set(everything)
    assert await search(admin) == everything
    assert await search(sup) == await db_keys("AND platform = '12345'")
    assert await search(sup110, P110) == await db_keys("AND platform = '110'")
    assert ("110", a) in await search(admin, platform="110")
    # Filters: outcome, agent, category, origin.
    transferred = await search(sup, outcome="transferred")
    answered = await search(sup, outcome="answered")
    assert ("12345", a) in transferred and ("12345", b) not in transferred
    assert {("12345", b), ("12345", c)} <= set(answered) and ("12345", a) not in answered
    assert transferred == await db_keys("AND platform = '12345' AND outcome = 'transferred'")
    by_agent = await search(sup, agent="agent12345-2")
    assert {("12345", b), ("12345", c)} <= set(by_agent) and ("12345", a) not in by_agent
    assert by_agent == await db_keys("AND platform = '12345' AND 'agent12345-2' = ANY(agents)")
    assert ("12345", a) in await search(sup, agent="agent12345-1")
    complaints = await search(admin, category="ivr.complaint", origin="12345")
    assert {("12345", a), ("110", a)} <= set(complaints) and ("12345", b) not in complaints
    # Pagination, one ticket a page: every ticket once, in order, no gap, no duplicate.
    paged, pages = await walk(P12345, admin, {**window, "limit": "1"})
    assert keys(paged) == everything and pages == len(everything)
    paged2, pages2 = await walk(P12345, sup, {**window, "limit": "2", "outcome": "answered"})
    assert keys(paged2) == answered and pages2 == (len(answered) + 1) // 2
    # Exports: as many rows as a count(*) on the same filters.
    status, headers, body = await get(P12345, "/api/v1/tickets/export", sup,
                                      {**window, "format": "csv"})
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith('attachment; filename="tickets-12345-')
    table = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    count = await conn.fetchval("SELECT count(*) FROM archive_tickets WHERE platform = '12345' "
                                "AND opened_at >= $1 AND opened_at < $2", lo, hi)
    assert len(table) == count == len(await db_keys("AND platform = '12345'"))
    row_b = next(r for r in table if r["ticket_id"] == b)
    assert row_b["outcome"] == "answered" and row_b["agents"] == "agent12345-2"
    status, headers, body = await get(P12345, "/api/v1/tickets/export", admin,
                                      {**window, "format": "jsonl", "outcome": "answered"})
    lines = [orjson.loads(line) for line in body.splitlines()]
    count = await conn.fetchval("SELECT count(*) FROM archive_tickets WHERE outcome = 'answered' "
                                "AND opened_at >= $1 AND opened_at < $2", lo, hi)
    assert status == 200 and len(lines) == count and count >= 3  # B, C and A on 110
    # One ticket and its full trace, as archived.
    status, detail = await get_json(P12345, f"/api/v1/tickets/{a}", sup)
    assert status == 200 and (detail["live"], detail["ticket"]["outcome"]) == (
        False, "transferred")
    assert [t["direction"] for t in detail["transfers"]] == ["12345->110"]
    assert "agent12345-1" in {leg["agent"] for leg in detail["legs"]} and detail["calls"]
    for platform, token in (("12345", sup), ("110", admin)):
        status, trace = await get_json(P12345, f"/api/v1/tickets/{a}/timeline", token,
                                       {"platform": platform})
        steps = await conn.fetchval("SELECT count(*) FROM archive_steps WHERE platform = $1 "
                                    "AND ticket_id = $2", platform, a)
        assert status == 200 and trace["source"] == "archive", trace
        assert len(trace["steps"]) == steps > 0
        ats = [s["at"] for s in trace["steps"]]
        assert ats == sorted(ats) and trace["steps"][0]["kind"]
    status, trace_b = await get_json(P12345, f"/api/v1/tickets/{b}/timeline", sup)
    assert status == 200 and trace_b["source"] == "archive"  # the call ended: archived now
    # Refusals.
    refusals = [
        (agent, "/api/v1/tickets", {}, 403, "supervisor_only"),
        (agent, f"/api/v1/tickets/{a}/timeline", {}, 403, "supervisor_only"),
        (agent, "/api/v1/tickets/export", window, 403, "supervisor_only"),
        (sup, "/api/v1/tickets", {"platform": "110"}, 403, "other_platform"),
        (sup, "/api/v1/tickets", {"limit": "0"}, 422, "invalid_limit"),
        (sup, "/api/v1/tickets", {"from": "last tuesday"}, 400, "invalid_from"),
        (sup, "/api/v1/tickets", {"outcome": "lost"}, 422, "invalid_outcome"),
        (sup, "/api/v1/tickets", {"division": "1101"}, 422, "invalid_division"),
        (sup, "/api/v1/tickets", {"cursor": "bm90IG9uZQ"}, 400, "invalid_cursor"),
        (sup, "/api/v1/tickets/export", {}, 422, "window_required"),
        (sup, "/api/v1/tickets/export", {"from": "2025-01-01T00:00:00Z",
                                         "to": "2025-03-01T00:00:00Z"}, 422, "window_too_long"),
        (sup, "/api/v1/tickets/T12345-0-0", {}, 404, "ticket_not_found"),
    ]
    for token, path, params, want_status, want_code in refusals:
        status, body = await get_json(P12345, path, token, params)
        assert (status, body["error"]["code"]) == (want_status, want_code), (path, params, body)


async def test_with_postgresql_unreachable_the_service_starts_and_the_archive_is_503(
        lab: Lab) -> None:
    """A DSN nobody answers on: the service starts, call control and the monitor answer,
    the archive routes say 503 archive_unavailable (and the next try tries again)."""
    sup = lab.token_for("supervisor12345")
    nowhere = "postgresql://hotline:wrong@127.0.0.1:9/hotline"  # discard port: refused
    config = replace(lab_config("12345"), ivr=QUIET_IVR, archive_dsn=nowhere)
    service = PlatformService(config)
    assert service.archive_pool is not None
    await service.start()
    try:
        await service.wait_ready(15)
        answers = [await get_json(P12345, path, sup, params) for path, params in (
            ("/api/v1/tickets", {}), ("/api/v1/tickets/T12345-1-1", {}),
            ("/api/v1/tickets/T12345-1-1/timeline", {}),
            ("/api/v1/tickets/export", {"from": "1", "to": "2"}))]
        await asyncio.sleep(2.2)  # past the retry pause: a fresh attempt, still refused
        again = await get_json(P12345, "/api/v1/tickets", sup)
        calls = await get_json(P12345, "/api/v1/calls", sup)
    finally:
        await service.stop()
    for status, body in [*answers, again]:
        assert (status, body["error"]["code"]) == (503, "archive_unavailable"), body
    assert again[1]["error"]["detail"]["reason"] != "recent_failure"
    assert calls[0] == 200

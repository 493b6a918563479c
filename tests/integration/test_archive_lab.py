"""The ticket archive on the real lab: SIPp calls end up in PostgreSQL with every step,
and a PostgreSQL outage loses nothing, duplicates nothing and holds up nothing.

The services run in this process (telephony.lab.services); their store writer
processes archive into the lab's PostgreSQL (`Lab().postgres_dsn`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg

from telephony.lab import private_postgres
from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import running_services
from telephony.lab.sipp import citizen_call
from telephony.lab.topology import NODES
from telephony.service import PlatformService

PRESS_CATEGORY = [(1500, "2")]  # 12345 IVR: 2 = complaint


async def archived(lab: Lab, ticket_id: str, platforms: int = 1,
                   within_s: float = 20.0) -> list[asyncpg.Record]:
    """The ticket's archive rows once `platforms` services have archived it."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            conn = await asyncpg.connect(lab.postgres_dsn, timeout=2)
            try:
                rows = await conn.fetch("SELECT * FROM archive_tickets WHERE ticket_id = $1",
                                        ticket_id)
            finally:
                await conn.close()
            if len(rows) >= platforms:
                return rows
        except (OSError, asyncpg.PostgresError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{ticket_id} was not archived on {platforms} platform(s)")
        await asyncio.sleep(0.25)


async def counts(lab: Lab, table: str, ticket_ids: list[str]) -> dict[tuple[str, str], int]:
    conn = await asyncpg.connect(lab.postgres_dsn)
    try:
        rows = await conn.fetch(f"SELECT platform, ticket_id, count(*) AS n FROM {table} "
                                "WHERE ticket_id = ANY($1) GROUP BY 1, 2", ticket_ids)
    finally:
        await conn.close()
    return {(r["platform"], r["ticket_id"]): r["n"] for r in rows}


async def timeline_length(service: PlatformService, ticket_id: str) -> int:
    await service.store.flush()
    return len(await service.store.timeline(ticket_id))


async def test_a_transferred_call_is_archived_on_both_platforms_with_every_step(
        lab: Lab) -> None:
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=[(2000, "*1")]), \
            logged_in_agent(lab, "110") as police:
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 caller="13811112222", dtmf=PRESS_CATEGORY, talk_s=8)
        moved = await police.wait_for_calls(1, ended=True)
        ticket = moved[0].invite.headers["X-Ticket-Id"]
        rows = {r["platform"]: r for r in await archived(lab, ticket, platforms=2)}
        in_redis = {p: await timeline_length(svc[p], ticket) for p in ("12345", "110")}
        # The SLA figures of the last hour from the archive: over the API and as gauges.
        token = lab.token_for("supervisor12345")
        now = time.time()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with http.get(f"http://127.0.0.1:{NODES['12345'].http_port}/api/v1/sla",
                                params={"from": str(int(now - 3600)),
                                        "to": str(int(now + 60))}) as resp:
                sla_status, sla = resp.status, await resp.json()
            exporter = svc["12345"].sla_exporter
            assert exporter is not None and await exporter.round()
            async with http.get(f"http://127.0.0.1:{NODES['12345'].http_port}/metrics") as resp:
                exposition = await resp.text()
    steps = await counts(lab, "archive_steps", [ticket])
    transfers = await counts(lab, "archive_transfers", [ticket])
    assert res.ok, res.errors
    assert rows["12345"]["outcome"] == "transferred" and rows["110"]["outcome"] == "answered"
    for platform in ("12345", "110"):
        row = rows[platform]
        assert (row["origin"], row["category"], row["callback"]) == (
            "12345", "ivr.complaint", "13811112222")
        # Every step of the Redis timeline, once.
        assert steps[(platform, ticket)] == in_redis[platform] == row["steps"]
    assert rows["12345"]["agents"] == ["agent12345-1"]
    assert rows["110"]["agents"] == ["agent110-1"]
    assert transfers == {("12345", ticket): 1}
    assert sla_status == 200, sla
    (group,) = sla["groups"]  # a supervisor's figures are its own platform's
    assert group["group"] == {"platform": "12345"}
    assert group["answer"]["answered"] >= 1
    assert group["transfers"]["12345->110"]["succeeded"] >= 1
    assert group["diversions"]["sent"]["12345->110"] >= 1
    assert 'hotline_sla_transfer_success_ratio{direction="12345->110",platform="12345"}' \
        in exposition
    assert 'hotline_sla_connection_rate_ratio{platform="12345"}' in exposition


async def test_postgres_down_during_calls_then_back_every_ticket_arrives_once(
        lab: Lab) -> None:
    tickets: list[str] = []
    async with running_services(platforms=("12345",)) as svc, \
            logged_in_agent(lab, "12345") as agent:
        service = svc["12345"]
        stopped = private_postgres.stop_server(lab.state.procs()["postgres"])
        try:
            for i in range(3):
                res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                         caller=f"1390000000{i}", dtmf=PRESS_CATEGORY,
                                         talk_s=1)
                assert res.ok, res.errors
            calls = await agent.wait_for_calls(3, ended=True)
            tickets = [c.invite.headers["X-Ticket-Id"] for c in calls]
            # The event path went on: every step reached Redis at once, nothing dropped.
            t0 = time.monotonic()
            assert await service.store.flush(5)
            flush_s = time.monotonic() - t0
            await asyncio.sleep(2.5)  # past the archiver's settle time and a retry or two
            during: dict[str, Any] = dict(service.store.writer_stats)
        finally:
            await asyncio.to_thread(lab.up)  # the lab's PostgreSQL again, from its data
        rows = [await archived(lab, t, within_s=40) for t in tickets]
        in_redis = {t: await timeline_length(service, t) for t in tickets}
        await asyncio.sleep(1.0)
        after: dict[str, Any] = dict(service.store.writer_stats)
    steps = await counts(lab, "archive_steps", tickets)
    ticket_rows = await counts(lab, "archive_tickets", tickets)
    assert stopped
    assert flush_s < 2.0, f"timeline writes waited {flush_s:.2f}s for the archive"
    assert during["dropped"] == 0 and during["archive_errors"] >= 1
    assert during["archive_pending"] >= 3  # held in Redis while the database was away
    assert all(len(r) == 1 for r in rows)
    assert ticket_rows == {("12345", t): 1 for t in tickets}  # exactly once
    assert steps == {("12345", t): in_redis[t] for t in tickets}  # every step, once
    assert after["archive_pending"] == 0 and after["dropped"] == 0

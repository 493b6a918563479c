"""The supervisor monitor on the real lab: read API, WebSocket and SSE feed, resume, slow clients.

Both services run in this process (telephony.lab.services); SIPp plays citizens
and agents; Asterisk 22 switches. Clients are real aiohttp WebSocket / HTTP
clients on loopback, as a wallboard or a softphone would be.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import aiohttp

from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import running_services
from telephony.lab.sipp import citizen_call
from telephony.lab.topology import NODES
from telephony.monitor.client import follow
from telephony.monitor.hub import HubLimits

PRESS_CATEGORY = [(1500, "2")]  # 12345 IVR: 2 = complaint
P12345, P110 = NODES["12345"].http_port, NODES["110"].http_port


async def get(port: int, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as resp:
        return resp.status, await resp.json()


def is_call(msg: dict[str, Any], state: str | None = None, fact: str | None = None) -> bool:
    return (msg["type"] == "call" and msg["op"] == "upsert"
            and (state is None or msg["call"]["state"] == state)
            and (fact is None or fact in msg["facts"]))


async def test_a_call_appears_in_the_snapshot_the_deltas_and_the_read_api(lab: Lab) -> None:
    sup = lab.token_for("supervisor12345")
    async with running_services(platforms=("12345",)), \
            logged_in_agent(lab, "12345") as agent, \
            follow(P12345, sup) as client:
        snapshot = await client.wait_for(lambda m: m["type"] == "snapshot")
        call = asyncio.create_task(citizen_call(
            number="12345", port=NODES["12345"].sip_port, caller="13811112222",
            dtmf=PRESS_CATEGORY, talk_s=6))
        talking = await client.wait_for(lambda m: is_call(m, "talking"))
        call_id = talking["call_id"]
        status, listed = await get(P12345, "/api/v1/calls", sup)
        one_status, one = await get(P12345, f"/api/v1/calls/{call_id}", sup)
        q_status, queues = await get(P12345, "/api/v1/queues", sup)
        a_status, agents = await get(P12345, "/api/v1/agents", sup)
        res = await call
        removed = await client.wait_for(
            lambda m: m["type"] == "call" and m["op"] == "remove" and m["call_id"] == call_id)
        await agent.wait_for_calls(1, ended=True)
    assert res.ok, res.errors
    assert snapshot["seq"] >= 1 and snapshot["reason"] == "connect"
    # Deltas in order, numbered without gaps for an unfiltered client.
    seqs = [m["seq"] for m in client.messages[1:]]
    assert seqs == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(seqs)))
    view = talking["call"]
    assert view["ticket"]["callback"] == "13811112222"
    assert view["ticket"]["category"] == "ivr.complaint"
    assert view["agents"] == ["agent12345-1"] and view["home_queue"] == "q12345"
    assert {leg["role"] for leg in view["legs"]} == {"caller", "agent"}
    states = [m["call"]["state"] for m in client.of_call(call_id) if m["op"] == "upsert"]
    assert states.index("queued") < states.index("talking"), states
    assert removed["facts"] == ["call.ended"]
    assert status == 200 and [c["call_id"] for c in listed["calls"]] == [call_id]
    assert one_status == 200 and one["call"]["ticket"]["id"] == view["ticket"]["id"]
    assert q_status == 200
    q = next(q for q in queues["queues"] if q["name"] == "q12345")
    assert q["agents"]["logged_in"] >= 1 and q["today"]["answered"] >= 1
    assert a_status == 200
    tile = next(a for a in agents["agents"] if a["agent"] == "agent12345-1")
    assert tile["logged_in"] and tile["call_id"] == call_id


async def test_a_one_key_transfer_reaches_the_110_agent_as_a_screen_pop_in_order(
        lab: Lab) -> None:
    sup12345 = lab.token_for("supervisor12345")
    agent110 = lab.token_for("agent110-1")
    async with running_services(), \
            logged_in_agent(lab, "12345", keys=[(2000, "*1")]) as first, \
            logged_in_agent(lab, "110") as police, \
            follow(P12345, sup12345) as board, \
            follow(P110, agent110) as phone:
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 caller="13811112222", dtmf=PRESS_CATEGORY, talk_s=12)
        await first.wait_for_calls(1, ended=True)
        moved = await police.wait_for_calls(1, ended=True)
        pop = await phone.wait_for(lambda m: m["type"] == "screen_pop")
        started = await board.wait_for(lambda m: is_call(m, fact="transfer.started"))
        await board.wait_for(lambda m: m["type"] == "call" and m["op"] == "remove"
                             and m["call_id"] == started["call_id"])
    assert res.ok, res.errors and moved[0].answered
    ticket = moved[0].invite.headers["X-Ticket-Id"]
    # The 110 agent's own feed: the full ticket context, the moment its phone rang.
    assert pop["agent"] == "agent110-1"
    assert pop["ticket"]["id"] == ticket and pop["ticket"]["origin"] == "12345"
    assert pop["ticket"]["callback"] == "13811112222"
    assert pop["ticket"]["category"] == "ivr.complaint"
    assert pop["call"]["origin"] == "12345"
    # The agent's feed is filtered to itself: nothing about anyone else.
    for msg in phone.messages:
        if msg["type"] in ("call", "screen_pop"):
            assert "agent110-1" in msg["agents"], msg
        if msg["type"] == "agent":
            assert msg["agent"]["agent"] == "agent110-1"
    # The 12345 board saw the transfer start, then the agent leave, in order.
    facts = [f for m in board.of_call(started["call_id"]) for f in m.get("facts", [])]
    assert facts.index("transfer.started") < facts.index("transfer.completed") \
        < facts.index("call.ended"), facts


async def test_a_three_party_call_updates_the_board_with_its_parties(lab: Lab) -> None:
    sup = lab.token_for("supervisor12345")
    async with running_services(), \
            logged_in_agent(lab, "12345", keys=[(2000, "*3")]) as hotline, \
            logged_in_agent(lab, "110") as police, \
            follow(P12345, sup) as board:
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 dtmf=PRESS_CATEGORY, talk_s=10)
        conf = await board.wait_for(
            lambda m: is_call(m, "conference") and len(m["call"]["conference"]["members"]) >= 3
            and any(leg["role"] == "trunk" and leg["state"] == "up" for leg in m["call"]["legs"]),
            25)
        await hotline.wait_for_calls(1, ended=True)
        await police.wait_for_calls(1, ended=True)
    assert res.ok, res.errors
    # In the conference: the caller, the 12345 agent and the leg bringing in 110 (a Local
    # channel whose other half is the trunk call to the 110 platform, answered).
    in_conf = sorted(leg["role"] for leg in conf["call"]["legs"]
                     if leg["conference"] == conf["call"]["conference"]["name"])
    assert {"caller", "agent"} <= set(in_conf) and len(in_conf) >= 3, in_conf
    assert conf["call"]["agents"] == ["agent12345-1"]
    states = [m["call"]["state"] for m in board.of_call(conf["call_id"]) if m["op"] == "upsert"]
    assert states.index("talking") < states.index("conference"), states


async def test_a_client_that_drops_and_resumes_misses_nothing(lab: Lab) -> None:
    sup = lab.token_for("supervisor12345")
    async with running_services(platforms=("12345",)), \
            logged_in_agent(lab, "12345") as agent, \
            follow(P12345, sup) as witness:
        async with follow(P12345, sup) as early:
            await early.wait_for(lambda m: m["type"] == "snapshot")
        dropped_at = early.last_seq
        # While it is away, a whole call happens.
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 dtmf=PRESS_CATEGORY, talk_s=3)
        await agent.wait_for_calls(1, ended=True)
        ended = await witness.wait_for(lambda m: m["type"] == "call" and m["op"] == "remove")
        async with follow(P12345, sup, since=dropped_at) as resumed:
            await resumed.wait_for(lambda m: m["seq"] >= ended["seq"])
        # After a stale or future seq, a snapshot instead.
        async with follow(P12345, sup, since=ended["seq"] + 10_000) as future:
            first_future = await future.wait_for(lambda m: True)
    assert res.ok, res.errors
    missed = [m for m in witness.messages if dropped_at < m["seq"] <= ended["seq"]]
    got = [m for m in resumed.messages if m["seq"] <= ended["seq"]]
    assert missed and got == missed  # same messages, same order: no gap, no duplicate
    assert resumed.messages[0]["type"] != "snapshot"
    assert first_future["type"] == "snapshot" and first_future["reason"] == "unknown_seq"


async def test_resume_from_redis_after_the_ring_moved_on_and_snapshot_after_a_restart(
        lab: Lab) -> None:
    sup = lab.token_for("supervisor12345")
    async with running_services(platforms=("12345",)) as svc, \
            logged_in_agent(lab, "12345") as agent, \
            follow(P12345, sup) as witness:
        hub = svc["12345"].monitor
        since = hub.log.seq
        await citizen_call(number="12345", port=NODES["12345"].sip_port,
                           dtmf=PRESS_CATEGORY, talk_s=2)
        await agent.wait_for_calls(1, ended=True)
        await witness.wait_for(lambda m: m["type"] == "call" and m["op"] == "remove")
        await svc["12345"].store.flush()
        hub.log.ring.clear()  # as if thousands of messages had passed: Redis must serve
        async with follow(P12345, sup, since=since) as resumed:
            await resumed.wait_for(lambda m: m["seq"] >= witness.last_seq)
        last = hub.log.seq
    expected = [m for m in witness.messages if since < m["seq"] <= last]
    assert [m for m in resumed.messages if m["seq"] <= last] == expected
    # A new service continues the numbering from Redis and marks its start.
    async with running_services(platforms=("12345",)), follow(P12345, sup, since=last) as after:
        first = await after.wait_for(lambda m: True)
    assert first["type"] == "snapshot" and first["reason"] == "restart"
    assert first["seq"] > last


def stuck_websocket(port: int, token: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/v1/monitor HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing after the headers is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_client_that_never_reads_does_not_delay_another(lab: Lab) -> None:
    sup = lab.token_for("supervisor12345")
    async with running_services(platforms=("12345",)) as svc, \
            logged_in_agent(lab, "12345") as agent:
        hub = svc["12345"].monitor
        hub.limits = HubLimits(max_queue=10, max_skips=1, skip_window=60, stall_s=2,
                               socket_buffer=4096)
        stuck = await asyncio.to_thread(stuck_websocket, P12345, sup)
        try:
            async with follow(P12345, sup) as reader:
                for _ in range(3):
                    await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                       dtmf=PRESS_CATEGORY, talk_s=1)
                await agent.wait_for_calls(3, ended=True)
                await reader.wait_for(lambda m: m["seq"] >= hub.log.seq)
                await asyncio.sleep(hub.limits.stall_s + 1.5)  # the watchdog's turn
                clients = len(hub.clients)
        finally:
            stuck.close()
    seqs = [m["seq"] for m in reader.messages[1:]]
    first = reader.messages[0]["seq"]
    assert seqs == list(range(first + 1, first + 1 + len(seqs))), "the reader missed messages"
    assert sum(1 for m in reader.messages if m["type"] == "call" and m["op"] == "remove") == 3
    assert clients == 1, "the stuck client should have been disconnected"


async def test_authorisation_of_the_read_api_and_feed(lab: Lab) -> None:
    async with running_services(platforms=("12345",)), aiohttp.ClientSession() as http:
        no_token = await get(P12345, "/api/v1/calls", None)
        other_agent = await get(P12345, "/api/v1/calls?agent=agent12345-2",
                                lab.token_for("agent12345-1"))
        other_platform = await get(P12345, "/api/v1/calls", lab.token_for("supervisor110"))
        bad_filter = await get(P12345, "/api/v1/calls?queue=q%0d%0aAction", lab.token_for(
            "supervisor12345"))
        bad_since = await get(P12345, "/api/v1/monitor?since=-1",
                              lab.token_for("supervisor12345"))
        unknown = await get(P12345, "/api/v1/calls/nope", lab.token_for("supervisor12345"))
        async with http.get(f"http://127.0.0.1:{P12345}/api/v1/monitor") as resp:
            ws_no_token = resp.status
        async with http.get(f"http://127.0.0.1:{P12345}/api/v1/monitor",
                            headers={"Authorization": "Bearer " + lab.token_for(
                                "supervisor12345")}) as resp:
            not_a_stream = resp.status, await resp.json()
        async with http.get(f"http://127.0.0.1:{P12345}/api/v1/monitor",
                            params={"token": lab.token_for("supervisor12345")},
                            headers={"Accept": "text/event-stream"}) as resp:
            sse_status = resp.status
            first = (await resp.content.readuntil(b"\n\n")).decode()
        async with http.get(f"http://127.0.0.1:{P12345}/wallboard/") as resp:
            page = resp.status, await resp.text()
    assert no_token[0] == 401 and ws_no_token == 401
    assert other_agent[0] == 403 and other_agent[1]["error"]["code"] == "not_your_phone"
    assert other_platform[0] == 403
    assert bad_filter[0] == 422
    assert bad_since[0] == 400 and bad_since[1]["error"]["code"] == "invalid_since"
    assert unknown[0] == 404
    assert not_a_stream[0] == 400 and not_a_stream[1]["error"]["code"] == "not_a_stream"
    assert sse_status == 200 and first.startswith("id: ") and "event: snapshot" in first
    assert page[0] == 200 and "<html" in page[1].lower()

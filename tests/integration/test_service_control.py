"""The service on the real lab: tracking, timelines, one-key transfers by DTMF and HTTP.

Both platform services run in this process (telephony.lab.services); SIPp plays
citizens and agents; Asterisk 22 does the switching. Every test checks who talks
to whom (SIPp's view), the ticket headers on the receiving INVITE, the operation's
outcome and the ticket timeline in Redis.
"""

from __future__ import annotations

import asyncio

import aiohttp

from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import running_services
from telephony.lab.sipp import citizen_call
from telephony.lab.topology import NODES
from telephony.service import PlatformService

PRESS_CATEGORY = [(1500, "2")]  # 12345 IVR: 2 = complaint


async def kinds(service: PlatformService, ticket_id: str) -> list[str]:
    await service.store.flush()
    return [fields["kind"] for _, fields in await service.store.timeline(ticket_id)]


def ops(service: PlatformService) -> list[dict]:
    return [op.to_dict() for op in service.controller._ops.values()]


async def api(method: str, port: int, path: str, token: str, headers: dict | None = None,
              **kw) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, **kw) as resp,
    ):
        return resp.status, await resp.json()


async def test_a_call_is_tracked_and_its_timeline_lands_in_redis(lab: Lab) -> None:
    async with running_services(platforms=("12345",)) as svc, \
            logged_in_agent(lab, "12345") as agent:
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 dtmf=PRESS_CATEGORY, talk_s=6)
        calls = await agent.wait_for_calls(1, ended=True)
        await asyncio.sleep(0.5)
        ticket = calls[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
        live = await svc["12345"].store.live_call_ids()
    assert res.ok and calls[0].answered
    for kind in ("leg.answered", "queue.joined", "queue.answered", "leg.bridged", "leg.left",
                 "call.ended"):
        assert kind in steps, (kind, steps)
    assert steps.index("queue.joined") < steps.index("queue.answered") < steps.index("call.ended")
    assert not live, "an ended call must not stay live in Redis"


async def test_one_key_transfer_by_dtmf_crosses_the_trunk_with_its_ticket(lab: Lab) -> None:
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=[(2000, "*1")]) as agent1, \
            logged_in_agent(lab, "110") as agent110:
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 caller="13811112222", dtmf=PRESS_CATEGORY, talk_s=12)
        first = await agent1.wait_for_calls(1, ended=True)
        moved = await agent110.wait_for_calls(1, ended=True)
        await asyncio.sleep(0.5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps_12345 = await kinds(svc["12345"], ticket)
        steps_110 = await kinds(svc["110"], ticket)
        done = ops(svc["12345"])
    assert res.ok, res.errors
    # SIPp's view: agent 1 answered, then its leg was hung up by the transfer; 110 answered.
    assert first[0].answered and first[0].hangup_by == "far"
    assert moved[0].answered
    inv = moved[0].invite.headers
    assert inv["X-Ticket-Id"] == ticket
    assert inv["X-Ticket-Origin"] == "12345"
    assert inv["X-Ticket-Category"] == "ivr.complaint"
    assert inv["X-Ticket-Callback"] == "13811112222"
    # One operation, confirmed by events; both platforms' timelines hold the ticket.
    assert [(o["kind"], o["state"]) for o in done] == [("blind_transfer", "completed")]
    assert {"transfer.started", "transfer.completed"} <= set(steps_12345), steps_12345
    assert "queue.answered" in steps_110


async def test_110_to_12345_diversion_by_dtmf(lab: Lab) -> None:
    async with running_services() as svc, \
            logged_in_agent(lab, "110", keys=[(2000, "*2")]) as police, \
            logged_in_agent(lab, "12345") as hotline:
        # 110 caller presses 1 (police now), the call-taker finds it non-police and diverts.
        res = await citizen_call(number="110", port=NODES["110"].sip_port,
                                 dtmf=[(1500, "1")], talk_s=12)
        first = await police.wait_for_calls(1, ended=True)
        moved = await hotline.wait_for_calls(1, ended=True)
    assert res.ok, res.errors
    assert moved and moved[0].answered
    assert moved[0].invite.headers["X-Ticket-Id"] == first[0].invite.headers["X-Ticket-Id"]
    assert moved[0].invite.headers["X-Ticket-Origin"] == "110"
    assert [o["state"] for o in ops(svc["110"])] == ["completed"]


async def test_one_key_transfer_by_http_action_url_and_a_double_press(lab: Lab) -> None:
    port = NODES["12345"].http_port
    token = lab.token_for("agent12345-1")
    async with running_services() as svc, \
            logged_in_agent(lab, "12345") as agent1, \
            logged_in_agent(lab, "110") as agent110:
        call = asyncio.create_task(citizen_call(
            number="12345", port=NODES["12345"].sip_port, dtmf=PRESS_CATEGORY, talk_s=12))
        await agent1.wait_for_calls(1, timeout_s=15)
        await asyncio.sleep(1.0)
        # A desk phone's programmable key: two presses, one operation.
        path = "/api/v1/keys/xfer110?agent=agent12345-1"
        (s1, op1), (s2, op2) = await asyncio.gather(
            api("POST", port, path, token), api("POST", port, path, token))
        other_status, other = await api("POST", port, "/api/v1/keys/xfer110?agent=agent12345-1",
                                        lab.token_for("agent12345-2"))
        res = await call
        # Read once the call has ended: a record read on arrival may predate the 200 OK.
        moved = await agent110.wait_for_calls(1, ended=True, timeout_s=15)
        states = [o["state"] for o in ops(svc["12345"])]
    assert (s1, s2) == (202, 202), (op1, op2)
    assert op1["op_id"] == op2["op_id"]
    assert other_status == 403 and other["error"]["code"], other
    assert moved and moved[0].answered
    assert res.ok
    assert states == ["completed"]


async def test_bad_requests_get_clear_errors(lab: Lab) -> None:
    port = NODES["12345"].http_port
    token = lab.token_for("agent12345-1")
    async with running_services(platforms=("12345",)):
        no_call = await api("POST", port, "/api/v1/keys/xfer110", token)
        bad_target = await api("POST", port, "/api/v1/transfers", token,
                               json={"call_id": "x", "target": "110\r\nAction: Originate"})
        no_token = await api("POST", port, "/api/v1/transfers", "not-a-token", json={})
        huge = await api("POST", port, "/api/v1/transfers", token, data=b"x" * (2 << 20),
                         headers={"Content-Type": "application/json"})
    assert no_call[0] == 404 and no_call[1]["error"]["code"] == "call_not_found"
    assert bad_target[0] in (404, 422)
    assert no_token[0] == 401
    assert huge[0] == 413

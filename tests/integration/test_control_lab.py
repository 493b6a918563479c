"""Call control on the real lab: warm transfer, three-party call, pull-in, no-answer return,
and the refusals (node down, injection, oversized fields).

Both platform services run in this process; SIPp plays citizens, agents and desks;
Asterisk 22 switches. Each test checks who talks to whom (SIPp's view: answered calls,
who hung up), the X-Ticket-* headers on the receiving INVITE, the operation's outcome
(the controller's record, confirmed by AMI events) and the ticket timeline in Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import running_services
from telephony.lab.sipp import citizen_call as _citizen_call
from telephony.lab.sipp import read_messages
from telephony.lab.topology import NODES
from telephony.service import PlatformService

PRESS_CATEGORY = [(1500, "2")]  # 12345 IVR: 2 = complaint
CALLBACK = "13855556666"
HTTP_12345 = NODES["12345"].http_port


def citizen_call(**kw: Any) -> asyncio.Task:
    """A 12345 citizen (complaint) in the background, staying `talk_s` after answer."""
    kw.setdefault("timeout_s", kw["talk_s"] + 12)
    return asyncio.create_task(_citizen_call(
        number="12345", port=NODES["12345"].sip_port, caller=CALLBACK, dtmf=PRESS_CATEGORY,
        **kw))


async def api(method: str, path: str, token: str, port: int = HTTP_12345,
              **kw: Any) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"http://127.0.0.1:{port}{path}",
                     headers={"Authorization": f"Bearer {token}"}, **kw) as resp,
    ):
        return resp.status, await resp.json()


async def timeline(service: PlatformService, ticket_id: str) -> list[dict]:
    await service.controller.drain()
    await service.store.flush()
    return [fields for _, fields in await service.store.timeline(ticket_id)]


async def kinds(service: PlatformService, ticket_id: str) -> list[str]:
    return [fields["kind"] for fields in await timeline(service, ticket_id)]


def ops(service: PlatformService, kind: str | None = None) -> list[dict]:
    return [op.to_dict() for op in service.controller._ops.values()
            if kind is None or op.kind == kind]


async def until(check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy (AMI events arrive asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached within {timeout_s}s: {check}")


def op_state(service: PlatformService, kind: str, *states: str) -> Callable[[], dict | None]:
    return lambda: next((o for o in ops(service, kind) if o["state"] in states), None)


async def agent_call_id(service: PlatformService, agent: str) -> str:
    """The agent's call once its tracker sees the agent talking with the caller.

    The agent's SIPp answering comes before the BridgeEnter reaches the service;
    a press in between waits for it (Controller.bridge_settle), but the tests
    press once the service knows, as a person would.
    """
    await until(lambda: agent_peer_role(service, agent) == "caller")
    return await until(lambda: service.directory.call_for_agent(agent))


def sent_actions(service: PlatformService) -> list[dict]:
    """Record every AMI action the controller sends from now on."""
    sender, sent = service.controller.sender, []
    original = sender.submit  # every action is written here (send() goes through it)

    def submit(action: Any) -> Any:
        sent.append(dict(action))
        return original(action)

    sender.submit = submit  # type: ignore[method-assign]
    return sent


def assert_ticket_headers(invite: Any, ticket: str) -> None:
    headers = invite.headers
    assert headers["X-Ticket-Id"] == ticket
    assert headers["X-Ticket-Origin"] == "12345"
    assert headers["X-Ticket-Category"] == "ivr.complaint"
    assert headers["X-Ticket-Callback"] == CALLBACK


# --- warm (attended) transfer --------------------------------------------------------
async def test_warm_transfer_by_keys_consults_110_then_completes(lab: Lab) -> None:
    # *4 starts the consultation (caller on hold), #2 is Asterisk's atxfercomplete.
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=[(2000, "*4"), (7000, "#2")]) as agent1, \
            logged_in_agent(lab, "110") as agent110:
        call = citizen_call(talk_s=16)
        first = await agent1.wait_for_calls(1, ended=True, timeout_s=25)
        consulted = await agent110.wait_for_calls(1, timeout_s=5)
        op = await until(op_state(svc["12345"], "warm_transfer", "completed"), 5)
        res = await call
        moved = await agent110.wait_for_calls(1, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
        steps_110 = await kinds(svc["110"], ticket)
    assert res.ok, res.errors
    # The agent answered, then Asterisk hung its leg up on completion; the caller stayed
    # with the 110 call-taker until the caller itself hung up.
    assert first[0].answered and first[0].hangup_by == "far"
    assert consulted and moved[0].answered and moved[0].hangup_by == "far"
    assert res.hangup_by == "us"
    assert_ticket_headers(moved[0].invite, ticket)
    assert [s["state"] for s in op["steps"]] == [
        "created", "requested", "consult_ringing", "consult_answered", "completed"]
    assert op["outcome"] == "completed" and op["initiator"] == "agent12345-1"
    assert "key.pressed" in steps and "transfer.completed" in steps, steps
    # The operation's own steps are on the ticket timeline too, in order.
    assert [k for k in steps if k.startswith("op.")] == [
        "op.warm_transfer.created", "op.warm_transfer.requested",
        "op.warm_transfer.consult_ringing", "op.warm_transfer.consult_answered",
        "op.warm_transfer.completed"], steps
    assert "queue.answered" in steps_110, steps_110


async def test_warm_transfer_by_http_completes(lab: Lab) -> None:
    token = lab.token_for("agent12345-1")
    async with running_services() as svc, \
            logged_in_agent(lab, "12345") as agent1, \
            logged_in_agent(lab, "110") as agent110:
        call = citizen_call(talk_s=14)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        call_id = await agent_call_id(svc["12345"], "agent12345-1")
        created = await api("POST", "/api/v1/transfers", token,
                            json={"call_id": call_id, "target": "110", "mode": "attended"})
        op_id = created[1]["op_id"]
        await until(op_state(svc["12345"], "warm_transfer", "consult_answered"))
        # While consulting, the caller is held: agent1 is still up, 110 has answered.
        during = await api("GET", f"/api/v1/transfers/{op_id}", token)
        completed = await api("POST", f"/api/v1/transfers/{op_id}/complete", token)
        op = await until(op_state(svc["12345"], "warm_transfer", "completed"), 5)
        res = await call
        moved = await agent110.wait_for_calls(1, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
        first = agent1.calls()
    assert created[0] == 202 and created[1]["mode"] == "attended"
    assert during[1]["state"] == "consult_answered"
    assert completed[0] == 202 and completed[1]["state"] in ("completing", "completed")
    assert res.ok, res.errors
    assert first[0].hangup_by == "far"
    assert moved[0].answered and moved[0].hangup_by == "far"
    assert_ticket_headers(moved[0].invite, ticket)
    assert op["outcome"] == "completed"
    assert "transfer.completed" in steps, steps
    assert steps.index("op.warm_transfer.completing") < steps.index("op.warm_transfer.completed")


async def test_warm_transfer_completed_while_ringing_becomes_a_blind_transfer(lab: Lab) -> None:
    token = lab.token_for("agent12345-1")
    async with running_services() as svc, \
            logged_in_agent(lab, "12345") as agent1, \
            logged_in_agent(lab, "110", ring_delay_ms=4000) as agent110:
        call = citizen_call(talk_s=16)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        call_id = await agent_call_id(svc["12345"], "agent12345-1")
        created = await api("POST", "/api/v1/transfers", token,
                            json={"call_id": call_id, "target": "110", "mode": "attended"})
        await until(op_state(svc["12345"], "warm_transfer", "consult_ringing"))
        completed = await api("POST", f"/api/v1/transfers/{created[1]['op_id']}/complete",
                              token)
        op = await until(op_state(svc["12345"], "warm_transfer", "completed"), 15)
        res = await call
        calls = await agent110.wait_for_calls(2, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
        first = agent1.calls()
    assert completed[0] == 202 and completed[1]["state"] in ("converting", "blind")
    assert res.ok and res.hangup_by == "us", res.errors
    # SIPp's view: the consult call was cancelled before answer; the blind one was answered.
    assert [c.answered for c in calls] == [False, True]
    assert_ticket_headers(calls[1].invite, ticket)
    assert first[0].hangup_by == "far"
    states = [s["state"] for s in op["steps"]]
    assert states[:4] == ["created", "requested", "consult_ringing", "converting"], states
    assert "blind" in states and op["blind"]["state"] == "completed"
    assert "transfer.completed" in steps and "op.warm_transfer.blind" in steps, steps


@pytest.mark.parametrize("how", ["key", "http"])
async def test_warm_transfer_cancel_returns_the_caller_to_the_agent(lab: Lab, how: str) -> None:
    token = lab.token_for("agent12345-1")
    keys = [(2000, "*4"), (7000, "#1")] if how == "key" else []
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=keys) as agent1, \
            logged_in_agent(lab, "110") as agent110:
        call = citizen_call(talk_s=14)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        if how == "http":
            call_id = await agent_call_id(svc["12345"], "agent12345-1")
            created = await api("POST", "/api/v1/transfers", token,
                                json={"call_id": call_id, "target": "110", "mode": "attended"})
            assert created[0] == 202, created
            await until(op_state(svc["12345"], "warm_transfer", "consult_answered"))
            cancelled = await api("POST", f"/api/v1/transfers/{created[1]['op_id']}/cancel",
                                  token)
            assert cancelled[0] == 202, cancelled
        op = await until(op_state(svc["12345"], "warm_transfer", "cancelled"), 12)
        # The consultation ended (110 hung up on), the caller and agent1 talk again.
        consult = await agent110.wait_for_calls(1, ended=True, timeout_s=5)
        call_id = svc["12345"].directory.call_for_agent("agent12345-1")
        view = svc["12345"].directory.get_call(call_id) if call_id else None
        agent_leg = view.agent_leg("agent12345-1") if view else None
        peer = view.bridged_peer(agent_leg) if view and agent_leg else None
        res = await call
        back = await agent1.wait_for_calls(1, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
    assert res.ok and res.hangup_by == "us", res.errors
    assert back[0].answered and back[0].hangup_by == "far"  # the caller's BYE, not ours
    assert consult[0].answered and consult[0].hangup_by == "far"
    assert_ticket_headers(consult[0].invite, ticket)
    assert peer is not None and peer.role == "caller", view
    assert op["outcome"] == "cancelled"
    # An abort is not a swap. Asterisk 22 returns the agent (BridgeEnter) a few ms before
    # the target's Hangup; the agent's DTMFEnd events (AMI read class `dtmf`) tell #1
    # from #4, so the op never reads the abort as a swap (see docs/control.md).
    states = [step["state"] for step in op["steps"]]
    assert op["swaps"] == 0 and "swapped" not in states, op["steps"]
    if how == "key":
        last = op["steps"][-1]["detail"]
        assert last["by"] == "phone" and "seen_as_swap" not in last, op["steps"]
    else:
        assert op["steps"][-1]["state"] == "cancelled", op["steps"]
    assert "transfer.completed" not in steps, steps
    assert "op.warm_transfer.cancelled" in steps, steps


def recorded_events(service: PlatformService) -> list[dict]:
    """Record every AMI event the controller is fed from now on."""
    controller, seen = service.controller, []
    original = controller.on_event

    def on_event(event: Any) -> None:
        seen.append(dict(event))
        original(event)

    controller.on_event = on_event  # type: ignore[method-assign]
    return seen


def agent_peer_role(service: PlatformService, agent: str) -> str | None:
    """Who the agent's leg is bridged with right now, by the tracker's live view."""
    call_id = service.directory.call_for_agent(agent)
    view = service.directory.get_call(call_id) if call_id else None
    leg = view.agent_leg(agent) if view else None
    peer = view.bridged_peer(leg) if view and leg else None
    return peer.role if peer else None


def agent_bridges(events: list[dict], agent_channel: str) -> list[str]:
    """The bridges the agent's channel entered, in order (AMI BridgeEnter)."""
    return [e["BridgeUniqueid"] for e in events
            if e.get("Event") == "BridgeEnter" and e.get("Channel") == agent_channel]


@pytest.mark.parametrize("how", ["key", "http"])
async def test_warm_transfer_swap_between_caller_and_110_then_complete(
        lab: Lab, how: str) -> None:
    # Consult 110, swap back to the caller (#4, 110 waits), swap to 110 again, complete.
    token = lab.token_for("agent12345-1")
    keys = [(2000, "*4"), (8000, "#4"), (12000, "#4"), (16000, "#2")] if how == "key" else []
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=keys) as agent1, \
            logged_in_agent(lab, "110") as agent110:
        events = recorded_events(svc["12345"])
        sent = sent_actions(svc["12345"])
        call = citizen_call(talk_s=26)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        replies = []
        if how == "http":
            call_id = await agent_call_id(svc["12345"], "agent12345-1")
            created = await api("POST", "/api/v1/transfers", token,
                                json={"call_id": call_id, "target": "110", "mode": "attended"})
            assert created[0] == 202, created
            op_id = created[1]["op_id"]
        answered = await until(op_state(svc["12345"], "warm_transfer", "consult_answered"))
        op_id = answered["op_id"]
        consult_peer = await until(lambda: agent_peer_role(svc["12345"], "agent12345-1"))
        if how == "http":
            replies.append(await api("POST", f"/api/v1/transfers/{op_id}/swap", token))
        swapped = await until(op_state(svc["12345"], "warm_transfer", "swapped"), 10)
        with_caller = await until(lambda: agent_peer_role(svc["12345"], "agent12345-1")
                                  == "caller", 5)
        if how == "http":
            replies.append(await api("POST", f"/api/v1/transfers/{op_id}/swap", token))
        back = await until(lambda: next((o for o in ops(svc["12345"], "warm_transfer")
                                         if o["swaps"] == 2), None), 10)
        with_target = agent_peer_role(svc["12345"], "agent12345-1")
        if how == "http":
            replies.append(await api("POST", f"/api/v1/transfers/{op_id}/complete", token))
        op = await until(op_state(svc["12345"], "warm_transfer", "completed"), 10)
        res = await call
        moved = await agent110.wait_for_calls(1, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
        first = agent1.calls()
    assert res.ok and res.hangup_by == "us", res.errors
    # SIPp: one consult call to 110, answered, carried the ticket and stayed with the caller.
    assert len(moved) == 1 and moved[0].answered and moved[0].hangup_by == "far"
    assert_ticket_headers(moved[0].invite, ticket)
    assert first[0].answered and first[0].hangup_by == "far"
    # Who talks to whom (tracker view, from AMI bridge events).
    assert consult_peer != "caller" and with_caller and with_target != "caller", (
        consult_peer, with_target)
    home = swapped["steps"][-1]["detail"]
    assert home == {"swap": 1}, swapped["steps"]
    bridges = agent_bridges(events, answered["agent_channel"])
    assert len(bridges) >= 4 and bridges[0] == bridges[2] and bridges[1] == bridges[3], bridges
    assert back["state"] == "consult_answered"
    # Consecutive equal states are notes (a swap request is recorded in the current state).
    states = [s["state"] for i, s in enumerate(op["steps"])
              if i == 0 or s["state"] != op["steps"][i - 1]["state"]]
    assert states == ["created", "requested", "consult_ringing", "consult_answered",
                      "swapped", "consult_answered",
                      *(["completing"] if how == "http" else []), "completed"], states
    assert states[-1] == "completed" and op["outcome"] == "completed" and op["swaps"] == 2
    assert "op.warm_transfer.swapped" in steps and "transfer.completed" in steps, steps
    playdtmf = [a for a in sent if a["Action"] == "PlayDTMF"]
    if how == "http":
        assert [r[0] for r in replies] == [202, 202, 202], replies
        assert op["swap_requests"] == 2
        assert [a["Digit"] for a in playdtmf] == ["#", "4", "#", "4"]
        assert all(a["Receive"] == "true" for a in playdtmf)
    else:
        assert playdtmf == [] and op["swap_requests"] == 0


# --- three-party call and pull-in -------------------------------------------------------
async def test_three_party_by_keys_agent_leaves_and_the_call_goes_on(lab: Lab) -> None:
    # *3 makes the conference with 110; *0 (the ConfBridge agent menu) leaves it.
    token = lab.token_for("agent12345-1")
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=[(2000, "*3"), (9000, "*0")]) as agent1, \
            logged_in_agent(lab, "110") as agent110:
        call = citizen_call(talk_s=16)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        conf = await until(lambda: next((o for o in ops(svc["12345"], "conference")
                                         if o["participants"]
                                         and o["participants"][0]["state"] == "joined"), None))
        negotiated = await api("POST", f"/api/v1/conferences/{conf['op_id']}/negotiation",
                               token, json={"outcome": "agreed_110",
                                            "police_dispatch_first": False})
        left = await until(lambda: next((o for o in ops(svc["12345"], "conference")
                                         if o["agent_left"]), None))
        still_on = left["state"]
        res = await call
        taker = await agent110.wait_for_calls(1, ended=True, timeout_s=5)
        final = await until(op_state(svc["12345"], "conference", "caller_hung_up", "ended"), 5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        entries = await timeline(svc["12345"], ticket)
        steps = [e["kind"] for e in entries]
        first = agent1.calls()
    assert res.ok and res.hangup_by == "us", res.errors
    assert first[0].answered and first[0].hangup_by == "far"  # LEAVE_3WAY hung the agent up
    assert taker[0].answered and taker[0].hangup_by == "far"
    assert_ticket_headers(taker[0].invite, ticket)
    assert negotiated[0] == 200 and negotiated[1]["negotiation"] == "agreed_110"
    assert negotiated[1]["owner"] == "110"
    assert still_on == "active"  # caller + 110 went on without the 12345 agent
    assert final["negotiation"] == "agreed_110" and final["agent_left"]
    assert final["participants"][0]["target"] == "110"
    assert any(s.get("detail", {}).get("negotiation") == "agreed_110" for s in final["steps"])
    assert {"conference.joined", "conference.left"} <= set(steps), steps
    decided = [e for e in entries if e.get("negotiation") == "agreed_110"]
    assert decided and decided[0]["kind"] == "op.conference.active", entries
    assert "op.conference.caller_hung_up" in steps, steps


async def test_three_party_left_to_the_caller_returns_it_to_the_12345_queue(lab: Lab) -> None:
    # *3 makes the conference; the 110 call-taker hangs up by itself, then agent1 leaves
    # (*0). The caller alone goes back to the owning queue (首接 12345: no negotiation),
    # at the front, and agent12345-2 answers it with the same ticket.
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=[(2000, "*3"), (12000, "*0")]) as agent1, \
            logged_in_agent(lab, "110", hangup_after_ms=5000) as agent110:
        call = citizen_call(talk_s=30)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        # agent1 is busy with this call; agent2 logs in now, agent1 leaves the queue, so the
        # returned caller can only reach agent2.
        lab.agent_logout("12345", "agent12345-1")
        async with logged_in_agent(lab, "12345", index=1) as agent2:
            taker = await agent110.wait_for_calls(1, ended=True, timeout_s=15)
            final = await until(op_state(svc["12345"], "conference", "ended",
                                         "caller_hung_up"), 15)
            second = await agent2.wait_for_calls(1, timeout_s=15)
            res = await call
            second = await agent2.wait_for_calls(1, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        entries = await timeline(svc["12345"], ticket)
        steps = [e["kind"] for e in entries]
        first = agent1.calls()
    assert res.ok and res.hangup_by == "us", res.errors
    # SIPp: 110 answered and hung up itself; LEAVE_3WAY hung agent1 up; agent2 answered the
    # returned caller (same ticket) and stayed until the caller's BYE.
    assert taker[0].answered and taker[0].hangup_by == "us"
    assert_ticket_headers(taker[0].invite, ticket)
    assert len(first) == 1 and first[0].hangup_by == "far"
    assert len(second) == 1 and second[0].answered and second[0].hangup_by == "far"
    assert_ticket_headers(second[0].invite, ticket)
    # The operation: caller alone -> returning (owner 12345) -> ended, returned_to_queue.
    returning = next(st for st in final["steps"] if st["state"] == "returning")
    assert returning["detail"] == {"owner": "12345"} and final["negotiation"] is None
    assert final["state"] == "ended" and final["outcome"] == "returned_to_queue"
    assert final["return_to"] == "returned_to_queue" and final["agent_left"]
    assert final["participants"][0]["state"] == "left"
    states = [s["state"] for s in final["steps"]]
    assert states[:3] == ["created", "redirecting", "active"] and states[-2:] == [
        "returning", "ended"], states
    left = [s.get("detail", {}).get("left") for s in final["steps"]
            if s.get("detail", {}).get("left")]
    assert left == ["p1", "agent"], final["steps"]
    # The ticket timeline: the op's return, then the queue answering it again.
    assert steps.index("op.conference.returning") < steps.index("op.conference.ended"), steps
    answered = [i for i, k in enumerate(steps) if k == "queue.answered"]
    assert len(answered) >= 2 and answered[-1] > steps.index("op.conference.returning"), steps


async def test_pull_in_120_by_key_into_an_http_three_party_call(lab: Lab) -> None:
    token = lab.token_for("agent12345-1")
    async with running_services() as svc, \
            logged_in_agent(lab, "12345", keys=[(6000, "*6")]) as agent1, \
            logged_in_agent(lab, "110") as agent110:
        call = citizen_call(talk_s=16)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        call_id = await agent_call_id(svc["12345"], "agent12345-1")
        created = await api("POST", "/api/v1/conferences", token, json={"call_id": call_id})
        op_id = created[1]["op_id"]
        joined = await until(lambda: next(
            (o for o in ops(svc["12345"], "conference")
             if [p["state"] for p in o["participants"]] == ["joined", "joined"]), None))
        left = await api("POST", f"/api/v1/conferences/{op_id}/leave", token)
        await until(lambda: ops(svc["12345"], "conference")[0]["agent_left"])
        res = await call
        await agent110.wait_for_calls(1, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
        final = ops(svc["12345"], "conference")[0]
    desk_invites = [m for m in read_messages(lab.desk_dir("120"))
                    if m.method == "INVITE" and m.header("X-Ticket-Id") == ticket]
    assert created[0] == 202 and created[1]["purpose"] == "three_party"
    assert [p["target"] for p in joined["participants"]] == ["110", "120"]
    assert left[0] == 202
    assert res.ok and res.hangup_by == "us", res.errors
    assert len(desk_invites) == 1, "desk 120 must get exactly one INVITE for this ticket"
    assert desk_invites[0].header("X-Ticket-Origin") == "12345"
    assert desk_invites[0].header("X-Ticket-Callback") == CALLBACK
    assert final["state"] == "caller_hung_up" and final["agent_left"]
    assert steps.count("conference.joined") >= 4, steps  # caller, agent, 110, 120
    assert "op.conference.caller_hung_up" in steps, steps


# --- no answer: the caller is not lost -------------------------------------------------
async def test_blind_transfer_to_an_unstaffed_110_returns_the_caller_to_the_agent(
        lab: Lab) -> None:
    # No 110 agent is logged in: node110 keeps the trunk call ringing in its queue until
    # XFER_RING_TIMEOUT (20 s); hotline-return then rings agent12345-1 again.
    token = lab.token_for("agent12345-1")
    async with running_services() as svc, logged_in_agent(lab, "12345") as agent1:
        call = citizen_call(talk_s=30)
        first = await agent1.wait_for_calls(1, timeout_s=15)
        await agent_call_id(svc["12345"], "agent12345-1")  # talking with the caller
        pressed = await api("POST", "/api/v1/keys/xfer110?agent=agent12345-1", token)
        op = await until(op_state(svc["12345"], "blind_transfer", "returned_to_agent",
                                  "returned_to_queue"), 30)
        res = await call
        calls = await agent1.wait_for_calls(2, ended=True, timeout_s=5)
        ticket = first[0].invite.headers["X-Ticket-Id"]
        steps = await kinds(svc["12345"], ticket)
    assert pressed[0] == 202, pressed
    assert res.ok and res.hangup_by == "us", res.errors
    states = [s["state"] for s in op["steps"]]
    assert states[-3:] == ["target_failed", "returning", "returned_to_agent"], states
    assert op["dial_status"] == "NOANSWER"
    failed_at = next(s["at"] for s in op["steps"] if s["state"] == "target_failed")
    assert 19.0 <= failed_at - op["created_at"] <= 24.0  # XFER_RING_TIMEOUT
    # SIPp's view: agent1 answered twice; the returned call carries the same ticket.
    assert [c.answered for c in calls] == [True, True]
    assert calls[1].invite.headers["X-Ticket-Id"] == ticket
    assert calls[1].hangup_by == "far"
    assert "transfer.started" in steps, steps
    assert steps.index("op.blind_transfer.target_failed") < steps.index(
        "op.blind_transfer.returned_to_agent"), steps


# --- refusals -------------------------------------------------------------------------
async def test_node_down_injection_and_oversized_fields_never_reach_ami(lab: Lab) -> None:
    token = lab.token_for("agent12345-1")
    injection = "110\r\nAction: Originate\r\nChannel: PJSIP/agent12345-2\r\n\r\n"
    async with running_services(platforms=("12345",)) as svc, \
            logged_in_agent(lab, "12345") as agent1:
        sent = sent_actions(svc["12345"])
        call = citizen_call(talk_s=8)
        await agent1.wait_for_calls(1, timeout_s=15)
        call_id = await agent_call_id(svc["12345"], "agent12345-1")
        bad = [
            await api("POST", "/api/v1/transfers", token,
                      json={"call_id": call_id, "target": injection}),
            await api("POST", "/api/v1/conferences", token,
                      json={"call_id": call_id, "target": injection}),
            await api("POST", "/api/v1/transfers", token,
                      json={"call_id": call_id, "target": "110", "summary": injection}),
            await api("POST", "/api/v1/transfers", token,
                      json={"call_id": call_id + injection, "target": "110"}),
            await api("POST", "/api/v1/transfers", token,
                      json={"call_id": call_id, "target": "110", "mode": "x" * 10240}),
            await api("POST", "/api/v1/transfers", token,
                      json={"call_id": "x" * 10240, "target": "110"}),
        ]
        # The node goes down: the service's AMI session closes.
        await svc["12345"].sessions[0].close()
        down = await api("POST", "/api/v1/transfers", token,
                         json={"call_id": call_id, "target": "110"})
        key_down = await api("POST", "/api/v1/keys/xfer110?agent=agent12345-1", token)
        res = await call
    assert [status for status, _ in bad] == [422] * 6, bad
    assert [body["error"]["code"] for _, body in bad] == [
        "invalid_field", "invalid_field", "unknown_fields", "invalid_field", "invalid_field",
        "invalid_field"]
    assert down[0] == 503 and down[1]["error"]["code"] == "node_unavailable"
    assert key_down[0] == 503 and key_down[1]["error"]["code"] == "node_unavailable"
    assert sent == []  # nothing reached AMI
    assert not ops(svc["12345"])
    assert res.ok and res.hangup_by == "us"  # the caller was never touched

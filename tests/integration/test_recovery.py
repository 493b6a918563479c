"""Restart and reconnect recovery on the real lab: no ticket context lost, no call left live."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import QUIET_IVR, running_services
from telephony.lab.sipp import citizen_call
from telephony.lab.topology import NODES
from telephony.service import PlatformService, lab_config

PRESS_CATEGORY = [(1500, "2")]


async def _steps(service: PlatformService, ticket: str) -> list[str]:
    await service.store.flush()
    return [f["kind"] for _, f in await service.store.timeline(ticket)]


async def _answered_ticket(agent) -> str:
    calls = await agent.wait_for_calls(1, timeout_s=20)
    for _ in range(50):  # the record is read on the INVITE; its 200 OK is logged just after
        if calls and calls[0].answered:
            break
        await asyncio.sleep(0.1)
        calls = agent.calls()
    assert calls and calls[0].answered, "the agent never answered"
    return calls[0].invite.headers["X-Ticket-Id"]


async def test_service_restart_mid_call_keeps_the_timeline_and_tracks_the_live_call(
    lab: Lab,
) -> None:
    async with logged_in_agent(lab, "12345") as agent:
        call = asyncio.create_task(citizen_call(
            number="12345", port=NODES["12345"].sip_port, dtmf=PRESS_CATEGORY, talk_s=12))
        async with running_services(platforms=("12345",)) as svc:
            ticket = await _answered_ticket(agent)
            await asyncio.sleep(0.5)
            before = await _steps(svc["12345"], ticket)
        # The service is down here, mid-call. A new instance starts from Asterisk + Redis.
        second = PlatformService(replace(lab_config("12345"), ivr=QUIET_IVR))
        await second.start()
        try:
            await second.wait_ready(15)
            live = [leg for leg in second.tracker.legs.values() if leg.hangup_at is None]
            tracked_ticket = {second.tracker.legs[leg.uniqueid].ticket_id for leg in live}
            res = await call
            await asyncio.sleep(1.0)
            after = await _steps(second, ticket)
            still_live = await second.store.live_call_ids()
        finally:
            await second.stop()
    assert res.ok
    assert "queue.answered" in before and "call.ended" not in before
    assert len(live) == 2, [leg.channel for leg in live]  # citizen + agent, rebuilt
    assert tracked_ticket == {ticket}
    # One timeline across both service lives: the start from the first, the end from the second.
    assert after[: len(before)] == before
    assert after[-1] == "call.ended"
    assert not still_live


async def test_ami_link_killed_mid_call_recovers_and_closes_what_ended_meanwhile(
    lab: Lab,
) -> None:
    async with running_services(platforms=("12345",)) as svc, \
            logged_in_agent(lab, "12345") as agent:
        service = svc["12345"]
        session = service.sessions[0]
        call = asyncio.create_task(citizen_call(
            number="12345", port=NODES["12345"].sip_port, dtmf=PRESS_CATEGORY, talk_s=6))
        ticket = await _answered_ticket(agent)
        generation = session.generation
        service.recovered.clear()
        real_port, session.port = session.port, 1  # reconnects fail until we allow them
        session._protocol.abort()  # the TCP link dies; the call goes on in Asterisk
        res = await call  # ...and ends while nobody listens
        assert not service.recovered.is_set()
        session.port = real_port
        await asyncio.wait_for(service.recovered.wait(), 40)
        await asyncio.sleep(1.0)
        steps = await _steps(service, ticket)
        live_legs = [leg for leg in service.tracker.legs.values() if leg.hangup_at is None]
        live_calls = await service.store.live_call_ids()
    assert res.ok
    assert session.generation > generation, "the session must have logged in again"
    assert steps[-1] == "call.ended", steps
    assert live_legs == [] and not live_calls

"""Scripted call scenarios on the real lab, for recording AMI event fixtures.

Each scenario drives SIPp peers (citizens, agents) and raw AMI actions, then
checks the recorded events to prove the call really went the way it claims
(e.g. both parties entered a bridge). A scenario that did not happen raises
`ScenarioFailed`: a fixture must never show something the lab did not do.

The recorder (telephony/record.py) owns the AMI sessions and the event list;
a scenario sees them through `ScenarioRun`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telephony.ami import AmiError, AmiSession
from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.sipp import CitizenResult, citizen_call
from telephony.lab.topology import NODES

Event = dict[str, Any]
NODE_NAME = {platform: node.name for platform, node in NODES.items()}
AGENT_12345 = NODES["12345"].agents[0].endpoint  # agent12345-1
AGENT_110 = NODES["110"].agents[0].endpoint  # agent110-1
# Every call a scenario places carries a caller number with this prefix, so the recorder
# can tell our calls from those of anyone else using the lab at the same time.
CALLER_PREFIX = "1399999"


class ScenarioFailed(RuntimeError):
    """The lab did not do what the scenario scripts; the recording is not a fixture."""


@dataclass
class ScenarioRun:
    """What a scenario may use: the lab, one AMI session per platform, the live events."""

    lab: Lab
    ami: Mapping[str, AmiSession]
    events: list[Event] = field(default_factory=list)

    async def action(self, platform: str, action: Mapping[str, Any]) -> Any:
        return await self.ami[platform].send_action(action, reply_timeout=5.0)

    async def wait_event(
        self,
        match: Callable[[Event], bool],
        *,
        timeout_s: float = 10.0,
        after: int = 0,
        what: str = "event",
    ) -> Event:
        """The first recorded event (from index `after`) that `match`es; polls the live list."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        seen = after
        while True:
            for event in self.events[seen:]:
                if match(event):
                    return event
            seen = max(seen, len(self.events))
            if loop.time() > deadline:
                raise ScenarioFailed(f"no {what} within {timeout_s}s")
            await asyncio.sleep(0.02)

    async def bridged(
        self, platform: str, endpoint: str, *, timeout_s: float = 10.0, after: int = 0
    ) -> Event:
        """The BridgeEnter of `endpoint`'s channel on `platform`'s node."""
        return await self.wait_event(
            lambda e: (
                is_event(e, "BridgeEnter", platform)
                and str(e.get("Channel", "")).startswith(f"PJSIP/{endpoint}-")
            ),
            timeout_s=timeout_s,
            after=after,
            what=f"BridgeEnter of {endpoint} on {platform}",
        )

    async def peer_in_bridge(self, bridge_enter: Event, *, timeout_s: float = 5.0) -> Event:
        """The BridgeEnter of the other channel in the same bridge (the caller's side)."""
        bridge, own = bridge_enter["BridgeUniqueid"], bridge_enter["Channel"]
        node = bridge_enter["SystemName"]
        return await self.wait_event(
            lambda e: (
                e.get("Event") == "BridgeEnter"
                and e.get("SystemName") == node
                and e.get("BridgeUniqueid") == bridge
                and e.get("Channel") != own
            ),
            timeout_s=timeout_s,
            what=f"peer of {own} in bridge {bridge}",
        )

    def count(self, name: str, platform: str | None = None) -> int:
        return sum(is_event(e, name, platform) for e in self.events)

    def require(self, condition: bool, why: str) -> None:
        if not condition:
            raise ScenarioFailed(why)


def is_event(event: Event, name: str, platform: str | None = None) -> bool:
    return event.get("Event") == name and (
        platform is None or event.get("SystemName") == NODE_NAME[platform]
    )


@contextlib.asynccontextmanager
async def citizen(number: str = "12345", **options: Any) -> AsyncIterator[asyncio.Task]:
    """A citizen call placed on node 12345 in the background; waited for on exit."""
    options.setdefault("timeout_s", 30.0)
    options.setdefault("caller", f"{CALLER_PREFIX}0001")
    task: asyncio.Task[CitizenResult] = asyncio.create_task(
        citizen_call(number=number, port=NODES["12345"].sip_port, **options)
    )
    try:
        yield task
    finally:
        await asyncio.wait_for(asyncio.shield(task), options["timeout_s"] + 10)


# --------------------------------------------------------------------------- scenarios


async def simple_call(run: ScenarioRun) -> None:
    """Citizen -> 12345 (no FastAGI: straight to the queue); agent12345-1 answers; talk; citizen
    hangs up."""
    async with logged_in_agent(run.lab, "12345"), citizen(talk_s=4.0) as call:
        agent = await run.bridged("12345", AGENT_12345)
        await run.peer_in_bridge(agent)
    run.require(call.result().hangup_by == "us", "the citizen did not hang up first")
    await _all_hung_up(run)


async def queue_abandon(run: ScenarioRun) -> None:
    """Citizen -> 12345 with no agent logged in; hangs up after 3 s in the queue."""
    async with citizen(talk_s=3.0):
        await run.wait_event(
            lambda e: is_event(e, "QueueCallerJoin", "12345"), what="QueueCallerJoin"
        )
    await run.wait_event(
        lambda e: is_event(e, "QueueCallerAbandon", "12345"), what="QueueCallerAbandon"
    )


async def blind_transfer_cross_trunk(run: ScenarioRun) -> None:
    """Agent12345-1 answers; 1 s later AMI BlindTransfer of the caller to 110 over the trunk;
    agent110-1 answers; they talk; the citizen hangs up."""
    async with (
        logged_in_agent(run.lab, "12345"),
        logged_in_agent(run.lab, "110"),
        citizen(talk_s=8.0),
    ):
        await _answered_by_12345_agent(run)
        await asyncio.sleep(1.0)
        mark = len(run.events)
        await _blind_transfer(run, exten="110")
        agent110 = await run.bridged("110", AGENT_110, after=mark)
        trunk_leg = await run.peer_in_bridge(agent110)
        run.require(
            trunk_leg["Channel"].startswith("PJSIP/trunk12345-"),
            f"110 agent bridged with {trunk_leg['Channel']}, not the trunk",
        )
    await _all_hung_up(run)


async def _attended(run: ScenarioRun, key: str) -> int:
    """Atxfer from agent12345-1 to 110; the agent presses `key` (SIP INFO) 5 s after answer."""
    async with (
        logged_in_agent(run.lab, "12345", ring_delay_ms=1000, keys=[(5000, key)]),
        logged_in_agent(run.lab, "110"),
    ):
        mark, agent_channel = await _attended_call(run)
        if key == "#3":
            # The citizen left the three-way call; the two agents hang up too.
            with contextlib.suppress(AmiError):
                await run.action("12345", {"Action": "Hangup", "Channel": agent_channel})
    await _all_hung_up(run)
    return mark


async def _attended_call(run: ScenarioRun) -> tuple[int, str]:
    async with citizen(talk_s=12.0):
        # Atxfer works by queueing the channel's `atxfer` feature digits, and bridge feature
        # hooks are set up when a channel joins the bridge. Queue() runs without the `t`
        # option and features.conf disables the built-in key, so before the bridge: allow the
        # callee (agent) to transfer (BRIDGE_FEATURES=t on the caller) and give the agent's
        # channel an atxfer code (FEATUREMAP) while it still rings.
        queued = await run.wait_event(
            lambda e: is_event(e, "QueueCallerJoin", "12345"), what="QueueCallerJoin"
        )
        await run.action(
            "12345",
            {
                "Action": "Setvar",
                "Channel": queued["Channel"],
                "Variable": "BRIDGE_FEATURES",
                "Value": "t",
            },
        )
        ringing = await run.wait_event(
            lambda e: (
                is_event(e, "Newchannel", "12345")
                and str(e.get("Channel", "")).startswith(f"PJSIP/{AGENT_12345}-")
            ),
            what="the queue ringing agent12345-1",
        )
        await run.action(
            "12345",
            {
                "Action": "Setvar",
                "Channel": ringing["Channel"],
                "Variable": "FEATUREMAP(atxfer)",
                "Value": "*9",
            },
        )
        agent = await run.bridged("12345", AGENT_12345)
        await run.peer_in_bridge(agent)
        await asyncio.sleep(1.0)
        mark = len(run.events)
        await run.action(
            "12345",
            {
                "Action": "Atxfer",
                "Channel": agent["Channel"],
                "Context": "hotline-xfer",
                "Exten": "110",
            },
        )
        await run.bridged("110", AGENT_110, after=mark)
    return mark, agent["Channel"]


async def attended_transfer_complete(run: ScenarioRun) -> None:
    """Atxfer to 110; agent110-1 answers the consultation; agent12345-1 presses #2."""
    mark = await _attended(run, "#2")
    run.require(
        any(
            is_event(e, "AttendedTransfer", "12345") and e.get("Result") == "Success"
            for e in run.events[mark:]
        ),
        "no successful AttendedTransfer on node12345",
    )


async def attended_transfer_cancel(run: ScenarioRun) -> None:
    """Atxfer to 110; agent110-1 answers; agent12345-1 presses #1: back to the caller."""
    mark = await _attended(run, "#1")
    run.require(
        not any(is_event(e, "AttendedTransfer") for e in run.events[mark:]),
        "an abort must not produce an AttendedTransfer",
    )


async def attended_transfer_threeway(run: ScenarioRun) -> None:
    """Atxfer to 110; agent110-1 answers; agent12345-1 presses #3: all three talk."""
    mark = await _attended(run, "#3")
    agent_enters = [e for e in run.events[mark:] if is_event(e, "BridgeEnter", "12345")]
    run.require(len(agent_enters) >= 3, "the three-way bridge never held three channels")


async def conference_three_party(run: ScenarioRun) -> None:
    """Caller and agent12345-1 Redirected into a ConfBridge; 110 Originated in; the 12345
    agent leaves; the citizen hangs up later."""
    await _conference(run, third_party="110", conf="c1234")
    run.require(run.count("ConfbridgeJoin", "12345") >= 3, "fewer than 3 ConfbridgeJoin")


async def pull_in_desk(run: ScenarioRun) -> None:
    """Like conference_three_party, but the third party is desk 120 (ambulance)."""
    await _conference(run, third_party="120", conf="c1235")
    run.require(run.count("ConfbridgeJoin", "12345") >= 3, "fewer than 3 ConfbridgeJoin")


async def hangup_race(run: ScenarioRun) -> None:
    """Blind transfer to 110 while agent110-1 rings for 5 s; the citizen hangs up meanwhile."""
    async with (
        logged_in_agent(run.lab, "12345"),
        logged_in_agent(run.lab, "110", ring_delay_ms=5000),
        citizen(talk_s=4.0),
    ):
        await _answered_by_12345_agent(run)
        await asyncio.sleep(0.5)
        mark = len(run.events)
        await _blind_transfer(run, exten="110")
        await run.wait_event(
            lambda e: (
                is_event(e, "DialBegin", "110")
                and str(e.get("DestChannel", "")).startswith(f"PJSIP/{AGENT_110}-")
            ),
            after=mark,
            what="110 queue ringing agent110-1",
        )
    await _all_hung_up(run)
    run.require(
        not any(is_event(e, "BridgeEnter", "110") for e in run.events[mark:]),
        "agent110-1 answered: the race was lost",
    )


async def transfer_no_answer(run: ScenarioRun) -> None:
    """Blind transfer to 110 where agent110-1 answers 486 Busy every time; after the transfer
    ring timeout (4 s for this call instead of the 20 s default) the caller returns to
    agent12345-1 (hotline-return)."""
    async with (
        logged_in_agent(run.lab, "12345"),
        logged_in_agent(run.lab, "110", reject_code=486),
        citizen(talk_s=16.0),
    ):
        caller = await _answered_by_12345_agent(run)
        await asyncio.sleep(0.5)
        # A channel variable shadows the dialplan global of the same name: a short ring
        # timeout for this call keeps the scenario short.
        await run.action(
            "12345",
            {
                "Action": "Setvar",
                "Channel": caller["Channel"],
                "Variable": "XFER_RING_TIMEOUT",
                "Value": "4",
            },
        )
        mark = len(run.events)
        await _blind_transfer(run, exten="110")
        await run.wait_event(
            lambda e: (
                is_event(e, "UserEvent", "12345") and e.get("UserEvent") == "HotlineXferFailed"
            ),
            after=mark,
            what="UserEvent HotlineXferFailed",
        )
        await run.bridged("12345", AGENT_12345, after=mark, timeout_s=15)
    await _all_hung_up(run)


async def load_20(run: ScenarioRun) -> None:
    """20 overlapping calls, one every 250 ms, served by four 12345 agents who each hang up
    2 s after answering (citizens wait in the queue until served)."""
    async with contextlib.AsyncExitStack() as stack:
        for index in range(4):
            await stack.enter_async_context(
                logged_in_agent(run.lab, "12345", index, hangup_after_ms=2000)
            )
        calls = []
        for n in range(20):
            calls.append(
                asyncio.create_task(
                    citizen_call(
                        number="12345",
                        port=NODES["12345"].sip_port,
                        caller=f"{CALLER_PREFIX}{n:04d}",
                        talk_s=None,
                        timeout_s=45.0,
                    )
                )
            )
            await asyncio.sleep(0.25)
        results = await asyncio.gather(*calls)
        await _all_hung_up(run, timeout_s=20)
    run.require(all(r.hangup_by == "far" for r in results), "not every call was ended by its agent")
    run.require(run.count("AgentConnect", "12345") == 20, "not every call reached an agent")


# --------------------------------------------------------------------------- steps


async def _answered_by_12345_agent(run: ScenarioRun) -> Event:
    """Wait until agent12345-1 is bridged with a caller; the caller's BridgeEnter."""
    agent = await run.bridged("12345", AGENT_12345)
    return await run.peer_in_bridge(agent)


async def _blind_transfer(run: ScenarioRun, *, exten: str) -> None:
    """What the service's one-key transfer does: one BlindTransfer of the agent's leg.

    (hotline-return reads the agent from BLINDTRANSFER. The fixtures recorded before
    session 7 also show the `Setvar HOTLINE_RETURN_AGENT` the service sent then.)"""
    agent = await run.bridged("12345", AGENT_12345)
    await run.action(
        "12345",
        {
            "Action": "BlindTransfer",
            "Channel": agent["Channel"],
            "Context": "hotline-xfer",
            "Exten": exten,
        },
    )


async def _conference(run: ScenarioRun, *, third_party: str, conf: str) -> None:
    async with contextlib.AsyncExitStack() as agents:
        await agents.enter_async_context(logged_in_agent(run.lab, "12345"))
        if third_party == "110":
            await agents.enter_async_context(logged_in_agent(run.lab, "110"))
        third = await _conference_call(run, third_party=third_party, conf=conf)
        # The conference does not end by itself when the citizen leaves (no marked
        # user): the third party hangs up too.
        with contextlib.suppress(AmiError):
            await run.action("12345", {"Action": "Hangup", "Channel": third["Channel"]})
        await _all_hung_up(run)


async def _conference_call(run: ScenarioRun, *, third_party: str, conf: str) -> Event:
    """The service's three-party call; returns the third party's ConfbridgeJoin."""
    async with citizen(talk_s=12.0):
        agent = await run.bridged("12345", AGENT_12345)
        caller = await run.peer_in_bridge(agent)
        await asyncio.sleep(1.0)
        for channel, role in ((caller["Channel"], "caller"), (agent["Channel"], "agent")):
            await run.action(
                "12345",
                {
                    "Action": "Setvar",
                    "Channel": channel,
                    "Variable": "HOTLINE_CONF_ROLE",
                    "Value": role,
                },
            )
        await run.action(
            "12345",
            {
                "Action": "Redirect",
                "Channel": caller["Channel"],
                "ExtraChannel": agent["Channel"],
                "Context": "hotline-conf",
                "Exten": conf,
                "Priority": "1",
                "ExtraContext": "hotline-conf",
                "ExtraExten": conf,
                "ExtraPriority": "1",
            },
        )
        await run.action(
            "12345",
            {
                "Action": "Originate",
                "Channel": f"Local/{third_party}@hotline-out",
                "Context": "hotline-conf",
                "Exten": conf,
                "Priority": "1",
                "Async": "true",
                # As the service does: the third party's leg carries the caller's ticket
                # (inherited __ vars -> X-Ticket-* headers); a Local channel inherits nothing.
                "Variable": ["HOTLINE_CONF_ROLE=party", *_ticket_vars(caller)],
                "CallerID": f"{conf} <{CALLER_PREFIX}9000>",
            },
        )
        third = await run.wait_event(
            lambda e: (
                is_event(e, "ConfbridgeJoin", "12345")
                and str(e.get("Channel", "")).startswith("Local/")
            ),
            what=f"{third_party} joining conference {conf}",
        )
        await asyncio.sleep(2.0)
        # The 12345 agent leaves; the caller and the third party go on without them.
        await run.action("12345", {"Action": "Hangup", "Channel": agent["Channel"]})
    return third


def _ticket_vars(event: Event) -> list[str]:
    """The caller's ticket variables from an event's ChanVariable headers, as inherited vars."""
    return [
        f"__{v}" for v in chan_variables(event) if v.startswith("TICKET_") and not v.endswith("=")
    ]


async def _all_hung_up(run: ScenarioRun, timeout_s: float = 10.0) -> None:
    """Wait until no channel of ours is left on either node (others may use the lab too)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        ours = own_calls(run.events)
        left = [
            item.get("Channel")
            for platform in sorted(run.ami)
            for item in await run.ami[platform].core_show_channels()
            if (NODE_NAME[platform], item.get("Linkedid")) in ours
        ]
        if not left:
            return
        if loop.time() > deadline:
            raise ScenarioFailed(f"channels still up after {timeout_s}s: {left}")
        await asyncio.sleep(0.2)


def own_calls(events: list[Event], caller_prefix: str = CALLER_PREFIX) -> set[tuple[str, str]]:
    """The (node, Linkedid) calls a scenario placed, among everything the lab saw.

    A call is ours when any of its events shows a caller, connected-line or ticket
    callback number (TICKET_CALLBACK crosses the trunk) starting with `caller_prefix`.
    """
    ours: set[tuple[str, str]] = set()
    for event in events:
        if "Linkedid" not in event:
            continue
        numbers = [str(event.get("CallerIDNum", "")), str(event.get("ConnectedLineNum", ""))]
        numbers += [
            v.partition("=")[2] for v in chan_variables(event) if v.startswith("TICKET_CALLBACK=")
        ]
        if any(n.startswith(caller_prefix) for n in numbers):
            ours.add((event.get("SystemName", ""), event["Linkedid"]))
    return ours


def chan_variables(event: Event) -> list[str]:
    """The ChanVariable headers of an event ("NAME=value"); one header arrives as a str."""
    value = event.get("ChanVariable", [])
    return [value] if isinstance(value, str) else list(value)


Scenario = Callable[[ScenarioRun], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    fn.__name__: fn
    for fn in (
        simple_call,
        queue_abandon,
        blind_transfer_cross_trunk,
        attended_transfer_complete,
        attended_transfer_cancel,
        attended_transfer_threeway,
        conference_three_party,
        pull_in_desk,
        hangup_race,
        transfer_no_answer,
        load_20,
    )
}


def describe(name: str) -> str:
    """The scenario's one-paragraph summary (its docstring, on one line)."""
    return " ".join((SCENARIOS[name].__doc__ or "").split())

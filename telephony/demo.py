"""`hotline demo`: the main job. Scripted scenes on the real lab, printed as they happen.

Each scene is an async function that drives SIPp citizens/agents through the two
Asterisk nodes and returns what it saw; the demo fails (exit 1) if a scene's
outcome is wrong, so the demo is also a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.sipp import citizen_call
from telephony.lab.topology import NODES


@dataclass
class SceneResult:
    ok: bool
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)


Scene = Callable[[Lab], Awaitable[SceneResult]]


async def scene_citizen_to_12345(lab: Lab) -> SceneResult:
    out = SceneResult(ok=False)
    async with logged_in_agent(lab, "12345", ring_delay_ms=400) as agent:
        out.say("agent12345-1 logs in to q12345; a citizen (13800001234) dials 12345")
        res = await citizen_call(
            number="12345", port=NODES["12345"].sip_port, caller="13800001234", talk_s=2.0
        )
        calls = await agent.wait_for_calls(1, ended=True)
    if not (res.ok and calls and calls[0].answered):
        out.say(f"FAILED: citizen ok={res.ok} status={res.sip_status} {res.errors[:200]}")
        return out
    inv = calls[0].invite.headers
    out.say(f"agent12345-1 rang and answered; INVITE carried X-Ticket-Id={inv.get('X-Ticket-Id')}"
            f" X-Ticket-Callback={inv.get('X-Ticket-Callback')}")
    out.say(f"call lasted {res.call_duration_s:.1f}s, citizen hung up")
    out.ok = True
    return out


async def scene_trunk_12345_to_110(lab: Lab) -> SceneResult:
    out = SceneResult(ok=False)
    async with logged_in_agent(lab, "110") as agent110:
        out.say("agent110-1 logs in to q110; a citizen on the 12345 network dials 110")
        res = await citizen_call(
            number="110", port=NODES["12345"].sip_port, caller="13900005678", talk_s=2.0
        )
        calls = await agent110.wait_for_calls(1, ended=True)
    if not (res.ok and calls and calls[0].answered):
        out.say(f"FAILED: citizen ok={res.ok} status={res.sip_status} {res.errors[:200]}")
        return out
    inv = calls[0].invite.headers
    ticket = inv.get("X-Ticket-Id", "")
    out.say("node12345 created the ticket, dialled trunk110; node110 queued it in q110")
    out.say(f"the 110 agent's INVITE carried X-Ticket-Id: {ticket}"
            f" (X-Ticket-Origin: {inv.get('X-Ticket-Origin')})")
    out.ok = ticket.startswith("T12345-")
    return out


SCENES: list[tuple[str, Scene]] = [
    ("citizen calls 12345, an agent answers", scene_citizen_to_12345),
    ("a call crosses the trunk 12345 -> 110 with its ticket", scene_trunk_12345_to_110),
]


async def run_scenes(lab: Lab) -> bool:
    all_ok = True
    for n, (title, scene) in enumerate(SCENES, 1):
        print(f"\n== scene {n}: {title}")
        t0 = time.monotonic()
        try:
            result = await scene(lab)
        except Exception as exc:  # a broken scene is reported, and the demo goes on
            result = SceneResult(ok=False, lines=[f"FAILED with {type(exc).__name__}: {exc}"])
        for line in result.lines:
            print(f"   {line}")
        print(f"   -> {'OK' if result.ok else 'FAILED'} ({time.monotonic() - t0:.1f}s)")
        all_ok &= result.ok
    return all_ok


def _demo(args: argparse.Namespace) -> int:
    lab = Lab()
    with lab.exclusive():
        lab.up()
        ok = asyncio.run(run_scenes(lab))
    print("\ndemo " + ("passed" if ok else "had failures"))
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("demo", help="run the scripted scenes on the lab").set_defaults(func=_demo)

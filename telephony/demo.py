"""`hotline demo`: the main job. Scripted scenes on the real lab, printed as they happen.

Each scene is an async function that drives SIPp citizens/agents through the two
Asterisk nodes and returns what it saw; the demo fails (exit 1) if a scene's
outcome is wrong, so the demo is also a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from telephony.lab.agents import logged_in_agent
from telephony.lab.lab import Lab
from telephony.lab.services import running_services
from telephony.lab.sipp import citizen_call, read_messages
from telephony.lab.topology import HOST, NODES
from telephony.monitor.client import FeedClient, follow
from telephony.report.cli import ReportError, write_report
from telephony.service import PlatformService
from telephony.store_process import ProcessStore
from telephony.ticket_context import decode_summary


@dataclass
class SceneResult:
    ok: bool
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)


async def answered_invite(
    lab: Lab, out: SceneResult, *, agent_platform: str, number: str, via: str,
    caller: str = "13800001234", dtmf: list[tuple[int, str]] | None = None, talk_s: float = 2.0,
) -> dict[str, str] | None:
    """Log in the first agent of `agent_platform`, place a citizen call to `number` on node
    `via`, and return the headers of the INVITE that agent answered (None: say why)."""
    async with logged_in_agent(lab, agent_platform) as agent:
        res = await citizen_call(number=number, port=NODES[via].sip_port, caller=caller,
                                 dtmf=dtmf or [], talk_s=talk_s)
        calls = await agent.wait_for_calls(1, ended=True)
    if not (res.ok and calls and calls[0].answered):
        out.say(f"FAILED: citizen ok={res.ok} status={res.sip_status} answered="
                f"{bool(calls and calls[0].answered)} {res.errors[:200]}")
        return None
    return calls[0].invite.headers


Services = dict[str, PlatformService]
Scene = Callable[[Lab], Awaitable[SceneResult]]
ServiceScene = Callable[[Lab, Services], Awaitable[SceneResult]]


async def scene_citizen_to_12345(lab: Lab) -> SceneResult:
    out = SceneResult(ok=False)
    out.say("agent12345-1 logs in to q12345; a citizen (13800001234) dials 12345")
    inv = await answered_invite(lab, out, agent_platform="12345", number="12345", via="12345")
    if inv is not None:
        out.say(f"agent12345-1 rang and answered; INVITE carried X-Ticket-Id="
                f"{inv.get('X-Ticket-Id')} X-Ticket-Callback={inv.get('X-Ticket-Callback')}")
        out.ok = bool(inv.get("X-Ticket-Id"))
    return out

async def scene_trunk_12345_to_110(lab: Lab) -> SceneResult:
    out = SceneResult(ok=False)
    out.say("agent110-1 logs in to q110; a citizen on the 12345 network dials 110")
    inv = await answered_invite(lab, out, agent_platform="110", number="110", via="12345",
                                caller="13900005678")
    if inv is not None:
        ticket = inv.get("X-Ticket-Id", "")
        out.say("node12345 created the ticket, dialled trunk110; node110 queued it in q110")
        out.say(f"the 110 agent's INVITE carried X-Ticket-Id: {ticket}"
                f" (X-Ticket-Origin: {inv.get('X-Ticket-Origin')})")
        out.ok = ticket.startswith("T12345-")
    return out

async def timeline_lines(service: PlatformService, ticket: str, limit: int = 40) -> list[str]:
    """The ticket's timeline from Redis, as readable lines relative to its first step."""
    await service.store.flush()
    entries = await service.store.timeline(ticket)
    if not entries:
        return [f"(no timeline for {ticket})"]
    t0 = float(entries[0][1]["ts"])
    lines = []
    for _, f in entries[:limit]:
        detail = " ".join(f"{k}={f[k]}" for k in ("queue", "detail_kind", "target", "cause_txt")
                          if f.get(k))
        lines.append(f"  +{float(f['ts']) - t0:7.3f}s  {f['kind']:<20} {detail}")
    return lines


async def scene_ivr_category(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    out.say("a citizen dials 12345, hears the greeting and presses 2 (投诉举报 complaint)")
    inv = await answered_invite(lab, out, agent_platform="12345", number="12345", via="12345",
                                dtmf=[(1500, "2")], talk_s=6)
    if inv is not None:
        out.say(f"agent12345-1's INVITE: X-Ticket-Category={inv.get('X-Ticket-Category')} "
                f"X-Ticket-Summary={decode_summary(inv.get('X-Ticket-Summary', ''))}")
        out.ok = inv.get("X-Ticket-Category") == "ivr.complaint"
    return out

async def scene_ivr_emergency_escape(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    out.say("a citizen dials 12345 and presses 0 (life in danger) during the greeting")
    inv = await answered_invite(lab, out, agent_platform="110", number="12345", via="12345",
                                dtmf=[(1500, "0")], talk_s=22)
    if inv is not None:
        out.say(f"the call skipped the 12345 queue: agent110-1 answered, urgency="
                f"{inv.get('X-Ticket-Urgency')}, ticket {inv.get('X-Ticket-Id')}")
        out.ok = inv.get("X-Ticket-Urgency") == "critical"
    return out

async def scene_ivr_diversion(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    out.say("a citizen dials 110: 3 (non-emergency), 3 (water/power repair), 1 (accept 12345)")
    inv = await answered_invite(lab, out, agent_platform="12345", number="110", via="110",
                                dtmf=[(1500, "3"), (3000, "3"), (4500, "1")], talk_s=17)
    if inv is not None:
        out.say(f"agent12345-1 answered a ticket from {inv.get('X-Ticket-Origin')}: "
                f"{decode_summary(inv.get('X-Ticket-Summary', ''))}")
        out.ok = inv.get("X-Ticket-Origin") == "110"
    return out

async def scene_one_key_dtmf(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    async with (
        logged_in_agent(lab, "12345", keys=[(2000, "*1")]) as agent,
        logged_in_agent(lab, "110") as police,
    ):
        out.say("citizen -> 12345 agent; 2 s in, the agent presses *1 (one-key transfer to 110)")
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 dtmf=[(1500, "2")], talk_s=12)
        first = await agent.wait_for_calls(1, ended=True)
        moved = await police.wait_for_calls(1, ended=True)
    if not (res.ok and first and moved and moved[0].answered):
        out.say(f"FAILED: {res.errors[:200]}")
        return out
    ticket = first[0].invite.headers["X-Ticket-Id"]
    out.say(f"agent110-1's INVITE carried X-Ticket-Id={moved[0].invite.headers.get('X-Ticket-Id')}"
            f" category={moved[0].invite.headers.get('X-Ticket-Category')}")
    out.say(f"ticket {ticket} on the 12345 platform:")
    out.lines += await timeline_lines(svc["12345"], ticket)
    out.ok = moved[0].invite.headers.get("X-Ticket-Id") == ticket
    return out


async def scene_one_key_http(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    port = NODES["12345"].http_port
    async with (
        logged_in_agent(lab, "12345") as agent,
        logged_in_agent(lab, "110") as police,
    ):
        call = asyncio.create_task(citizen_call(
            number="12345", port=NODES["12345"].sip_port, dtmf=[(1500, "2")], talk_s=10))
        await agent.wait_for_calls(1, timeout_s=15)
        await asyncio.sleep(1.0)
        url = f"http://127.0.0.1:{port}/api/v1/keys/xfer110?token=...&agent=agent12345-1"
        out.say(f"the desk phone's action key: POST {url}")
        async with aiohttp.ClientSession() as http, http.post(
            url.replace("...", lab.token_for("agent12345-1"))
        ) as resp:
            body = await resp.json()
        out.say(f"-> HTTP {resp.status}, op {body.get('op_id')} state={body.get('state')}")
        moved = await police.wait_for_calls(1, timeout_s=15)
        res = await call
    op = svc["12345"].controller._ops.get(body.get("op_id", ""))
    out.say(f"operation outcome: {op.state if op else '?'}; agent110-1 answered: "
            f"{bool(moved and moved[0].answered)}")
    out.ok = bool(res.ok and moved and moved[0].answered and op and op.state == "completed")
    return out


async def _wait_for(check: Callable[[], Any], within: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.2)
    return None


def _op_lines(op: dict) -> list[str]:
    t0 = op["steps"][0]["at"] if op["steps"] else 0.0
    return [f"  +{step['at'] - t0:7.3f}s  {op['kind']}: {step['state']}" for step in op["steps"]]


async def scene_warm_transfer(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    async with (
        logged_in_agent(lab, "12345", keys=[(2000, "*4"), (7000, "#2")]) as agent,
        logged_in_agent(lab, "110") as police,
    ):
        out.say("agent12345-1 presses *4: the caller hears hold music while 110 is consulted;")
        out.say("5 s later the agent presses #2 (complete): caller and 110 talk, the agent leaves")
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 dtmf=[(1500, "2")], talk_s=16, timeout_s=30)
        first = await agent.wait_for_calls(1, ended=True)
        moved = await police.wait_for_calls(1, ended=True)
    ops = [o.to_dict() for o in svc["12345"].controller._ops.values()
           if o.kind == "warm_transfer"]
    if not (res.ok and ops and moved and moved[0].answered):
        out.say(f"FAILED: citizen ok={res.ok}, ops={[o['state'] for o in ops]}")
        return out
    out.lines += _op_lines(ops[-1])
    ticket = moved[0].invite.headers.get("X-Ticket-Id")
    out.say(f"the 110 call-taker's INVITE carried X-Ticket-Id={ticket}; the agent's leg "
            f"was ended by the {first[0].hangup_by} side")
    out.ok = ops[-1]["outcome"] == "completed"
    return out


async def scene_three_party(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    token = lab.token_for("agent12345-1")
    port = NODES["12345"].http_port
    async with (
        logged_in_agent(lab, "12345", keys=[(2000, "*3"), (12000, "*0")]),
        logged_in_agent(lab, "110") as police,
    ):
        out.say("unclear responsibility: agent12345-1 presses *3, 110 joins a three-party call")
        call = asyncio.create_task(citizen_call(number="12345", port=NODES["12345"].sip_port,
                                                dtmf=[(1500, "2")], talk_s=20, timeout_s=35))
        conf = await _wait_for(lambda: next(
            (o.to_dict() for o in svc["12345"].controller._ops.values()
             if o.kind == "conference" and o.to_dict()["participants"]
             and o.to_dict()["participants"][0]["state"] == "joined"), None))
        if not conf:
            out.say("FAILED: 110 never joined the conference")
            await call
            return out
        out.say("they agree the matter is 110's: the agent records it (POST .../negotiation)")
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{port}/api/v1/conferences/{conf['op_id']}/negotiation",
            headers={"Authorization": f"Bearer {token}"},
            json={"outcome": "agreed_110", "police_dispatch_first": False},
        ) as resp:
            body = await resp.json()
        out.say(f"-> HTTP {resp.status}: negotiation={body.get('negotiation')} "
                f"owner={body.get('owner')}")
        out.say("then the 12345 agent presses *0 and leaves; citizen and 110 talk on")
        res = await call
        taker = await police.wait_for_calls(1, ended=True)
    final = svc["12345"].controller._ops[conf["op_id"]].to_dict()
    out.lines += _op_lines(final)
    out.ok = bool(res.ok and taker and taker[0].answered and final["agent_left"]
                  and final["negotiation"] == "agreed_110")
    return out


async def scene_pull_in_120(lab: Lab, svc: Services) -> SceneResult:
    out = SceneResult(ok=False)
    before = len(read_messages(lab.desk_dir("120")))
    async with (
        logged_in_agent(lab, "12345", keys=[(2000, "*3"), (6000, "*6")]),
        logged_in_agent(lab, "110"),
    ):
        out.say("in a three-party call the caller mentions someone collapsed: the agent presses"
                " *6 and 120 (ambulance) is pulled into the same conference")
        res = await citizen_call(number="12345", port=NODES["12345"].sip_port,
                                 dtmf=[(1500, "2")], talk_s=14, timeout_s=30)
    await asyncio.sleep(0.5)
    invites = [m for m in read_messages(lab.desk_dir("120"))[before:]
               if m.direction == "received" and m.method == "INVITE"]
    if not (res.ok and invites):
        out.say("FAILED: desk 120 was never called")
        return out
    out.say(f"desk 120's INVITE: X-Ticket-Id={invites[-1].header('X-Ticket-Id')} "
            f"X-Ticket-Origin={invites[-1].header('X-Ticket-Origin')}")
    out.ok = True
    return out


async def scene_routing(lab: Lab, svc: Services) -> SceneResult:
    from routing.catalogue import DEFAULT_PATH, load_catalogue
    from routing.classifier import Classifier
    from routing.policy import decide_action

    out = SceneResult(ok=True)
    classifier = Classifier(load_catalogue(DEFAULT_PATH))
    notes = [
        "我家楼下有人拿刀砍人，流血了",
        "小区路灯坏了好几天了，晚上很黑",
        "上个月被人打了一顿，想咨询一下怎么起诉",
        "邻居装修噪音太大，还跟我吵起来了",
        "厨房着火了，烟很大",
        "老人突然晕倒了，没有呼吸",
    ]
    for note in notes:
        d = classifier.classify(note)
        action = decide_action(d, receiving="12345")
        out.say(f"{note}\n      -> primary={d.primary} also={list(d.also)} "
                f"three_party={d.three_party} emergency={d.emergency} | {d.reason}"
                f"\n      -> on the 12345 platform: {action.action} -> {','.join(action.targets)}"
                + (f" (work order to {action.work_order_to})" if action.work_order_to else ""))
        if d.emergency and d.primary == "12345":
            out.ok = False
    return out


SCENES: list[tuple[str, Scene]] = [
    ("citizen calls 12345 while the service is down: the dialplan still queues",
     scene_citizen_to_12345),
    ("a call crosses the trunk 12345 -> 110 with its ticket", scene_trunk_12345_to_110),
]
SERVICE_SCENES: list[tuple[str, ServiceScene]] = [
    ("IVR: the caller picks a category", scene_ivr_category),
    ("IVR: emergency escape straight to 110", scene_ivr_emergency_escape),
    ("IVR: 110 diverts a non-police caller to 12345", scene_ivr_diversion),
    ("one-key transfer *1 (DTMF) 12345 -> 110, with its timeline", scene_one_key_dtmf),
    ("one-key transfer from a desk phone's HTTP action key", scene_one_key_http),
    ("warm transfer *4: consult 110 with the caller on hold, then complete", scene_warm_transfer),
    ("three-party call 12345 + 110 + citizen, agreement recorded, 12345 leaves",
     scene_three_party),
    ("emergency pull-in: 120 joins a three-party call (*6)", scene_pull_in_120),
    ("routing decisions on agents' notes", scene_routing),
]


async def _play(n: int, title: str, run: Awaitable[SceneResult]) -> bool:
    print(f"\n== scene {n}: {title}")
    t0 = time.monotonic()
    try:
        result = await run
    except Exception as exc:  # a broken scene is reported, and the demo goes on
        result = SceneResult(ok=False, lines=[f"FAILED with {type(exc).__name__}: {exc}"])
    for line in result.lines:
        print(f"   {line}")
    print(f"   -> {'OK' if result.ok else 'FAILED'} ({time.monotonic() - t0:.1f}s)")
    return result.ok


def wallboard_url(lab: Lab, platform: str) -> str:
    token = lab.token_for(f"supervisor{platform}")
    return f"http://{HOST}:{NODES[platform].http_port}/wallboard/#token={token}"


async def scene_monitor_feeds(boards: dict[str, FeedClient]) -> SceneResult:
    """What the supervisors' feeds saw while the service scenes played: a checked scene."""
    await asyncio.sleep(0.5)  # the last call's final messages
    out = SceneResult(ok=True)
    for platform, board in boards.items():
        msgs = board.messages
        calls = {m["call_id"] for m in msgs if m["type"] == "call"}
        pops = [m for m in msgs if m["type"] == "screen_pop"]
        transfers = [m for m in msgs if m["type"] == "call" and "transfer.started" in m["facts"]]
        conferences = {m["call_id"] for m in msgs if m["type"] == "call"
                       and m["op"] == "upsert" and m["call"]["state"] == "conference"}
        gaps = board.gaps()
        out.say(f"{platform}: {len(msgs)} messages (seq {msgs[0]['seq'] if msgs else 0}.."
                f"{board.last_seq}), {len(calls)} calls, {len(transfers)} transfers started, "
                f"{len(conferences)} three-party calls, {len(pops)} screen-pops, gaps: {gaps}")
        if pops:
            t = pops[-1]["ticket"] or {}
            out.say(f"   last screen-pop: {pops[-1]['agent']} ticket {t.get('id')} from "
                    f"{t.get('origin')} callback {t.get('callback')} category {t.get('category')}")
        out.ok &= bool(calls) and not gaps and board.closed_with is None
    out.ok &= any(m["type"] == "screen_pop" and (m["ticket"] or {}).get("origin") == "12345"
                  for m in boards["110"].messages)
    return out


async def scene_sla_report(lab: Lab, svc: Services, since: float) -> SceneResult:
    """The archive's SLA figures for the demo's own calls, and the HTML report."""
    out = SceneResult(ok=False)
    out.say("waiting until both services have archived every ended ticket")
    deadline = time.monotonic() + 30
    # The lab's services archive from their store's writer process (ProcessStore).
    while any(not isinstance(s.store, ProcessStore) or s.store.writer_stats.get(
            "archive_pending", 1) for s in svc.values()):
        if time.monotonic() > deadline:
            out.say("FAILED: tickets still waiting for the archive after 30 s")
            return out
        await asyncio.sleep(0.5)
    path = lab.state_dir / "sla-report.html"  # beside the lab's logs and state
    try:
        summary = await write_report(lab.postgres_dsn, since, time.time() + 1, None, path)
    except ReportError as exc:
        out.say(f"FAILED: {exc}")
        return out
    out.say(f"{summary.tickets} tickets and {summary.transfers} transfers archived since the "
            "demo started:")
    out.lines.extend(f"   {line}" for line in summary.lines)
    out.say(f"SLA report: {summary.path}")
    out.ok = summary.tickets > 0 and summary.path.exists()
    return out


async def run_scenes(lab: Lab, keep: bool = False) -> bool:
    ok = True
    n = 0
    started = time.time()
    for title, scene in SCENES:
        n += 1
        ok &= await _play(n, title, scene(lab))
    print("\n== starting the hotline services for both platforms (IVR, call control, API)")
    async with running_services() as svc, \
            follow(NODES["12345"].http_port, lab.token_for("supervisor12345")) as b12345, \
            follow(NODES["110"].http_port, lab.token_for("supervisor110")) as b110:
        for platform in ("12345", "110"):
            print(f"   wallboard {platform}: {wallboard_url(lab, platform)}")
        for title, service_scene in SERVICE_SCENES:
            n += 1
            ok &= await _play(n, title, service_scene(lab, svc))
        n += 1
        ok &= await _play(n, "the supervisors' live feeds followed every scene",
                          scene_monitor_feeds({"12345": b12345, "110": b110}))
        n += 1
        ok &= await _play(n, "SLA figures from the PostgreSQL archive, and the HTML report",
                          scene_sla_report(lab, svc, started))
        if keep:
            print("\n== --keep: the lab and both services stay up; wallboards:")
            for platform in ("12345", "110"):
                print(f"   {wallboard_url(lab, platform)}")
            print("   Ctrl-C to stop the services (the lab stays up: `hotline lab down`)")
            await _until_interrupted()
    return ok


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _demo(args: argparse.Namespace) -> int:
    lab = Lab()
    with lab.exclusive():
        lab.up()
        ok = asyncio.run(run_scenes(lab, keep=args.keep))
    print("\ndemo " + ("passed" if ok else "had failures"))
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the scripted scenes on the lab")
    p.add_argument("--keep", action="store_true",
                   help="leave the lab and both services (and their wallboards) up afterwards")
    p.set_defaults(func=_demo)

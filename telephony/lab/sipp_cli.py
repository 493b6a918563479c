"""`hotline sipp call|agent|desk`: run the lab's SIP peers by hand (see sip-sim/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Sequence

from telephony.lab import topology
from telephony.lab.sipp_peers import SippAgent, SippDesk, SippUas, citizen_call
from telephony.lab.sipp_xml import check_presses


def register(subparsers: argparse._SubParsersAction) -> None:
    """`hotline sipp call|agent|desk`: run the lab's SIP peers by hand."""
    sipp = subparsers.add_parser("sipp", help="run a SIPp citizen, agent or desk by hand")
    commands = sipp.add_subparsers(dest="sipp_command", required=True)

    call = commands.add_parser("call", help="place one citizen call and print the result")
    call.add_argument("--number", required=True, help="dialled number, e.g. 12345")
    call.add_argument("--port", type=int, required=True, help="node SIP port, e.g. 15060")
    call.add_argument("--caller", default="13800000001")
    call.add_argument("--header", action="append", default=[], metavar="X-NAME=VALUE")
    call.add_argument("--dtmf", action="append", default=[], metavar="MS:DIGITS")
    call.add_argument("--dtmf-mode", choices=("rfc4733", "info"), default="rfc4733")
    call.add_argument("--talk", type=float, default=3.0, help="seconds after answer, then BYE")
    call.add_argument("--until-bye", action="store_true", help="stay until the far end hangs up")
    call.add_argument("--audio", action="store_true", help="play g711a.pcap after answer")
    call.add_argument("--timeout", type=float, default=30.0)
    call.set_defaults(func=_cli_call)

    agent = commands.add_parser("agent", help="run an auto-answer agent until Ctrl-C")
    agent.add_argument("--port", type=int, required=True, help="e.g. 16101")
    agent.add_argument("--user", default="agent")
    agent.add_argument("--ring-delay", type=int, default=0, metavar="MS")
    agent.add_argument("--reject", type=int, metavar="CODE", help="e.g. 486")
    agent.add_argument("--ring-forever", action="store_true")
    agent.add_argument("--key", action="append", default=[], metavar="MS:DIGITS")
    agent.add_argument("--key-mode", choices=("info", "rfc4733"), default="info")
    agent.add_argument("--hangup-after", type=int, metavar="MS")
    agent.add_argument("--lifetime", type=float, default=900.0, metavar="S")
    agent.set_defaults(func=_cli_agent)

    desk = commands.add_parser("desk", help="run an emergency desk UAS until Ctrl-C")
    desk.add_argument("--number", choices=sorted(topology.DESKS), default="119")
    desk.add_argument("--port", type=int, help="default: the desk's lab port")
    desk.add_argument("--lifetime", type=float, default=900.0, metavar="S")
    desk.set_defaults(func=_cli_desk)


def parse_presses(values: Sequence[str]) -> list[tuple[int, str]]:
    """'1500:0' -> (1500, '0'); the CLI form of key presses."""
    presses = []
    for value in values:
        delay, sep, digits = value.partition(":")
        if not sep or not delay.isdigit():
            raise ValueError(f"expected MS:DIGITS, got {value!r}")
        presses.append((int(delay), digits))
    return check_presses(presses)


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep:
            raise ValueError(f"expected X-NAME=VALUE, got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def _cli_call(args: argparse.Namespace) -> int:
    result = asyncio.run(
        citizen_call(
            number=args.number,
            port=args.port,
            caller=args.caller,
            headers=parse_headers(args.header),
            dtmf=parse_presses(args.dtmf),
            dtmf_mode=args.dtmf_mode,
            talk_s=None if args.until_bye else args.talk,
            play_audio=args.audio,
            timeout_s=args.timeout,
        )
    )
    summary = {
        "ok": result.ok,
        "sip_status": result.sip_status,
        "call_id": result.call_id,
        "invite_to_ringing_ms": result.invite_to_ringing_ms,
        "invite_to_answer_ms": result.invite_to_answer_ms,
        "call_duration_s": result.call_duration_s,
        "hangup_by": result.hangup_by,
        "exit_code": result.exit_code,
        "errors": result.errors,
    }
    print(json.dumps(summary, indent=2))
    return 0 if result.ok else 1


def _cli_agent(args: argparse.Namespace) -> int:
    return asyncio.run(
        _serve_until_stopped(
            SippAgent.start(
                port=args.port,
                user=args.user,
                ring_delay_ms=args.ring_delay,
                reject_code=args.reject,
                ring_forever=args.ring_forever,
                keys=parse_presses(args.key),
                mode=args.key_mode,
                hangup_after_ms=args.hangup_after,
                lifetime_s=args.lifetime,
            )
        )
    )


def _cli_desk(args: argparse.Namespace) -> int:
    port = args.port or topology.DESKS[args.number].sip_port
    return asyncio.run(
        _serve_until_stopped(
            SippDesk.start(port=port, number=args.number, lifetime_s=args.lifetime)
        )
    )


async def _serve_until_stopped(starting: Awaitable[SippUas]) -> int:
    """Run a UAS, print each INVITE as it arrives, stop on SIGINT/SIGTERM or its exit."""
    uas = await starting
    print(f"listening on {topology.HOST}:{uas.port} (work dir {uas.workdir})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    shown = 0
    while not stop.is_set() and uas.running:
        invites = uas.invites()
        for headers in invites[shown:]:
            print(json.dumps(headers), flush=True)
        shown = len(invites)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    result = await uas.stop()
    print(f"calls: {len(result.calls)}, answered: {result.answered}, sipp exit {result.exit_code}")
    if result.errors:
        print(result.errors)
    return 0

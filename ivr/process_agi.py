"""Process AGI: run the same async flows under pyst2's synchronous AGI.

Dialplan: `AGI(/path/to/python,-m,ivr.process_agi,ingress-12345)` or a wrapper
script; Asterisk talks on stdin/stdout. pyst2 reads the agi_* environment and
sends commands; result lines are parsed by our own parser, so hangup semantics
and quoting match FastAGI exactly (pyst2's get_result crashes on a bare
`HANGUP` line and reads lines without a bound).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import IO, Any

from ivr.agi_protocol import MAX_LINE_BYTES, AgiEnv, AgiHangup, AgiProtocolError, is_usage_start
from ivr.channel import AgiChannel
from ivr.flows import FLOWS, ROUTES, FlowDeps, run_flow
from ivr.queue_stats import DialplanQueueStats
from ivr.settings import IvrSettings
from ivr.tickets import JsonlTicketSink
from telephony.lab.topology import NODES
from telephony.logging import configure_logging

TICKET_LOG_ENV = "HOTLINE_IVR_TICKET_LOG"
DEFAULT_TICKET_LOG = "/var/spool/asterisk/hotline/ivr-tickets.jsonl"


class PystTransport:
    """LineTransport over a pyst2 AGI object (blocking; one call per process)."""

    def __init__(self, agi: Any) -> None:  # pyst2's AGI (untyped)
        self._agi = agi

    async def roundtrip(self, command: str) -> str:
        from asterisk.agi import AGIHangup as PystHangup

        try:
            self._agi.test_hangup()  # raises once pyst2's SIGHUP handler fired
            self._agi.send_command(command)
        except PystHangup as exc:
            raise AgiHangup(str(exc)) from exc
        except OSError as exc:  # broken pipe: Asterisk is gone
            raise AgiHangup(f"write failed: {exc}") from exc
        line = self._read_line()
        if is_usage_start(line):
            while not line.startswith("520 "):
                line = self._read_line()
        return line

    def _read_line(self) -> str:
        raw = self._agi.stdin.readline(MAX_LINE_BYTES + 1)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        if raw == "":
            raise AgiHangup("EOF from Asterisk")
        if len(raw) > MAX_LINE_BYTES:
            raise AgiProtocolError("line too long")
        return raw.rstrip("\r\n")


def deps_for(route: str, environ: dict[str, str] | None = None) -> FlowDeps:
    env = os.environ if environ is None else environ
    platform = next(p for p, r in ROUTES.items() if r == route)
    return FlowDeps(
        platform=platform,
        queue=env.get("HOTLINE_IVR_QUEUE", NODES[platform].queue),
        tickets=JsonlTicketSink(env.get(TICKET_LOG_ENV, DEFAULT_TICKET_LOG)),
        queue_stats=DialplanQueueStats(),
        settings=IvrSettings.from_env(dict(env)),
    )


async def run_process_agi(agi: Any, deps: FlowDeps, prompt_dir: str = "hotline") -> str:
    """Run the platform's flow over a pyst2 AGI; returns the destination set."""
    channel = AgiChannel(AgiEnv(dict(agi.env)), PystTransport(agi), prompt_dir)
    outcome = await run_flow(FLOWS[deps.platform], channel, deps)
    return outcome.dest


def main(
    argv: list[str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    from asterisk.agi import AGI

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ROUTES.values():
        print(f"usage: python -m ivr.process_agi {{{','.join(ROUTES.values())}}}", file=sys.stderr)
        return 2
    # stdout is the AGI channel: logs must never go there.
    configure_logging(os.environ.get("HOTLINE_LOG_LEVEL", "INFO"), sys.stderr)
    # pyst2 chats on stderr; keep Asterisk's console quiet unless asked.
    quiet = stderr or open(os.devnull, "w")  # lives as long as the process
    agi = AGI(stdin=stdin or sys.stdin, stdout=stdout or sys.stdout, stderr=quiet)
    try:
        asyncio.run(run_process_agi(agi, deps_for(args[0])))
    except AgiHangup:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

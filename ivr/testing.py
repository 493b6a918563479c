"""A scripted Asterisk for tests and demos: it answers AGI commands as a caller would.

The caller's script is a list of actions consumed at input opportunities:
- a digit string ("3", "13800138000"): pressed at the next prompt that accepts
  digits (interrupting it), or at the next WAIT FOR DIGIT / GET DATA;
- "timeout": the next WAIT FOR DIGIT / GET DATA times out (prompts play through);
- "hangup" / "hangup:line" / "hangup:511" / "hangup:-1" / "hangup:eof": the caller
  hangs up before the next command, and Asterisk says so in that style; every later
  command gets 511, as on a dead channel.
When the script runs out, every input times out, so a flow can never wait forever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ivr.agi_protocol import MAX_LINE_BYTES, AgiEnv, AgiHangup

_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
EOF = ""  # roundtrip result that means: close the connection


def parse_command(line: str) -> tuple[str, list[str]]:
    """`VERB WORDS "a" "b"` -> ("VERB WORDS", ["a", "b"]), undoing our quoting."""
    head, _, _ = line.partition('"')
    verb = head.strip()
    args = [re.sub(r"\\(.)", r"\1", a) for a in _ARG.findall(line)]
    return verb, args


@dataclass
class ScriptedPeer:
    script: list[str]
    variables: dict[str, str] = field(default_factory=dict)  # GET VARIABLE answers
    commands: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    set_vars: list[tuple[str, str]] = field(default_factory=list)
    hangup_style: str = "-1"
    missing_verbs: tuple[str, ...] = ()  # answer these with -1, as for a missing sound file
    dead: bool = False

    def _next(self) -> str | None:
        return self.script[0] if self.script else None

    def _hangup_reply(self, style: str) -> str:
        return {
            "line": "HANGUP",
            "511": "511 Command Not Permitted on a dead channel or intercepted",
            "eof": EOF,
        }.get(style, "200 result=-1")

    def respond(self, line: str) -> str:
        """One command line -> one response line (EOF means close)."""
        self.commands.append(line.rstrip("\n"))
        verb, args = parse_command(line)
        if self.dead:  # Asterisk answers every command on a dead channel with 511
            return self._hangup_reply("511")
        nxt = self._next()
        if nxt is not None and nxt.startswith("hangup"):
            self.script.pop(0)
            self.dead = True
            _, _, style = nxt.partition(":")
            return self._hangup_reply(style or self.hangup_style)
        if verb in self.missing_verbs:
            return "200 result=-1 endpos=0"
        if verb == "STREAM FILE":
            self.prompts.append(args[0].rsplit("/", 1)[-1])
            escape = args[1] if len(args) > 1 else ""
            if nxt and nxt[0] in "0123456789*#" and nxt[0] in escape:
                self.script.pop(0)
                return f"200 result={ord(nxt[0])} endpos=8000"
            return "200 result=0 endpos=16000"
        if verb == "WAIT FOR DIGIT":
            if nxt is None:
                return "200 result=0"
            self.script.pop(0)
            return "200 result=0" if nxt == "timeout" else f"200 result={ord(nxt[0])}"
        if verb == "GET DATA":
            self.prompts.append(args[0].rsplit("/", 1)[-1])
            if nxt is None or nxt == "timeout":
                if nxt:
                    self.script.pop(0)
                return "200 result= (timeout)"
            self.script.pop(0)
            return f"200 result={nxt}"
        if verb == "GET VARIABLE":
            value = self.variables.get(args[0])
            return "200 result=0" if value is None else f"200 result=1 ({value})"
        if verb == "SET VARIABLE":
            self.set_vars.append((args[0], args[1]))
            return "200 result=1"
        if verb in ("ANSWER", "EXEC"):
            return "200 result=0"
        if verb in ("VERBOSE", "HANGUP"):
            return "200 result=1"
        return "510 Invalid or unknown command"

    @property
    def final_vars(self) -> dict[str, str]:
        return dict(self.set_vars)


class ScriptedTransport:
    """LineTransport straight into a ScriptedPeer (no socket)."""

    def __init__(self, peer: ScriptedPeer) -> None:
        self.peer = peer

    async def roundtrip(self, command: str) -> str:
        reply = self.peer.respond(command)
        if reply == EOF:
            raise AgiHangup("EOF from Asterisk")
        return reply[:MAX_LINE_BYTES]


def agi_headers(route: str, **extra: str) -> dict[str, str]:
    """A realistic FastAGI header set for agi://127.0.0.1/<route>."""
    values = {
        "agi_network": "yes",
        "agi_network_script": route,
        "agi_request": f"agi://127.0.0.1/{route}",
        "agi_channel": "PJSIP/citizen-00000001",
        "agi_language": "zh",
        "agi_type": "PJSIP",
        "agi_uniqueid": "1700000000.1",
        "agi_version": "22.10.1",
        "agi_callerid": "13800138000",
        "agi_calleridname": "citizen",
        "agi_context": "hotline-ingress",
        "agi_extension": "12345",
        "agi_priority": "2",
    }
    values.update(extra)
    return values


def header_block(values: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in values.items()).encode() + b"\n"


def env_of(values: dict[str, str]) -> AgiEnv:
    return AgiEnv(dict(values))

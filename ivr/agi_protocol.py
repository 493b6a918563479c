"""The AGI wire protocol, as pure functions: header lines, command lines, result lines.

Shared by the FastAGI server and the process-AGI adapter so both see the same
quoting rules and the same hangup semantics. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LINE_BYTES = 4096  # one header or result line; Asterisk's own lines are far shorter
MAX_HEADER_BYTES = 16384  # the whole header block
MAX_HEADER_LINES = 128  # Asterisk sends ~25 plus one per agi_arg_N
MAX_ARG_CHARS = 1024  # one command argument after sanitising

_HEADER_KEY = re.compile(r"^agi_[a-z0-9_]{1,60}$")
_RESULT = re.compile(r"^(?P<code>\d{3})(?:[ -](?P<rest>.*))?$")
_RESULT_VALUE = re.compile(r"^result=(?P<value>-?\d*)\s*(?:\((?P<data>[^)]*)\))?(?P<tail>.*)$")
_CTRL = re.compile(r"[\x00-\x1f\x7f]")
# A channel variable, optionally with the inheritance prefix.
_VAR_NAME = re.compile(r"^_{0,2}[A-Za-z][A-Za-z0-9_]{0,79}$")
# A dialplan function read through GET VARIABLE, e.g. QUEUE_WAITING_COUNT(q12345).
_FUNC_READ = re.compile(r"^[A-Z][A-Z0-9_]{0,39}\([A-Za-z0-9_.,-]{0,80}\)$")
_APP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


class AgiError(Exception):
    """Base of every AGI failure a flow may see."""


class AgiHangup(AgiError):
    """The caller hung up (HANGUP line, 511, result -1 or EOF): the flow must stop."""


class AgiProtocolError(AgiError):
    """The peer sent something that is not AGI (bad header, bad result line)."""


class AgiCommandError(AgiError):
    """Asterisk rejected a command (510 invalid, 520 usage)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code


@dataclass(frozen=True)
class AgiResult:
    """A parsed `200 result=<value> (<data>) key=val` line."""

    value: str
    data: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def as_int(self) -> int:
        try:
            return int(self.value)
        except ValueError:
            return 0


@dataclass(frozen=True)
class AgiEnv:
    """The `agi_*` header block Asterisk sends at session start."""

    values: dict[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def callerid(self) -> str:
        return self.get("agi_callerid")

    @property
    def route(self) -> str:
        return route_of(self)


def parse_header_line(line: bytes) -> tuple[str, str] | None:
    """One header line -> (key, value); None for the blank line that ends the block.

    Raises AgiProtocolError for anything that is not `agi_<name>: <value>`.
    """
    if len(line) > MAX_LINE_BYTES:
        raise AgiProtocolError("header line too long")
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    if text.strip() == "":
        return None
    key, sep, value = text.partition(":")
    key = key.strip()
    if not sep or not _HEADER_KEY.match(key):
        raise AgiProtocolError(f"malformed header line {text[:60]!r}")
    return key, _CTRL.sub(" ", value).strip()


def parse_header_block(data: bytes) -> AgiEnv:
    """A complete header block (ending with a blank line) -> AgiEnv. For tests and fuzzing;
    the server parses line by line with the same rules."""
    if len(data) > MAX_HEADER_BYTES:
        raise AgiProtocolError("header block too large")
    values: dict[str, str] = {}
    for count, raw in enumerate(data.split(b"\n")):
        if count >= MAX_HEADER_LINES:
            raise AgiProtocolError("too many header lines")
        parsed = parse_header_line(raw)
        if parsed is None:
            return AgiEnv(values)
        values[parsed[0]] = parsed[1]
    raise AgiProtocolError("header block not terminated")


def route_of(env: AgiEnv) -> str:
    """The route name from `agi://host:port/<route>?args` (agi_network_script), else ''."""
    script = env.get("agi_network_script") or _path_of_request(env.get("agi_request"))
    return script.split("?", 1)[0].strip("/")


def _path_of_request(request: str) -> str:
    if not request.startswith("agi://"):
        return ""
    _, _, path = request[len("agi://") :].partition("/")
    return path


def sanitize_arg(value: object) -> str:
    """Any value -> a single-line argument: control characters become spaces, length bounded."""
    text = _CTRL.sub(" ", str(value))
    return text[:MAX_ARG_CHARS]


def quote_arg(value: object) -> str:
    """Quote one argument the way Asterisk's AGI argument parser undoes it."""
    text = sanitize_arg(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def build_command(verb: str, *args: object) -> str:
    """`VERB "arg1" "arg2"` plus newline; the verb is a fixed word list from our own code."""
    if not re.fullmatch(r"[A-Z][A-Z ]{1,30}", verb):
        raise ValueError(f"bad AGI verb {verb!r}")
    parts = [verb, *(quote_arg(a) for a in args)]
    return " ".join(parts) + "\n"


def check_var_name(name: str, *, allow_function: bool = False) -> str:
    if _VAR_NAME.match(name) or (allow_function and _FUNC_READ.match(name)):
        return name
    raise ValueError(f"bad channel variable name {name!r:.60}")


def check_app_name(name: str) -> str:
    if _APP_NAME.match(name):
        return name
    raise ValueError(f"bad application name {name!r:.60}")


def is_hangup_line(line: str) -> bool:
    """Asterisk writes a bare `HANGUP` line on FastAGI when the channel goes away."""
    return line.strip() == "HANGUP"


def parse_result(line: str, *, hangup_on_minus_one: bool = True) -> AgiResult:
    """One response line -> AgiResult, or the exception that line means."""
    text = line.strip()
    if is_hangup_line(text):
        raise AgiHangup("HANGUP from Asterisk")
    m = _RESULT.match(text)
    if not m:
        raise AgiProtocolError(f"malformed result line {text[:60]!r}")
    code, rest = int(m.group("code")), (m.group("rest") or "").strip()
    if code == 511:
        raise AgiHangup("511: channel is dead")
    if code in (510, 520):
        raise AgiCommandError(code, rest)
    if code != 200:
        raise AgiProtocolError(f"unexpected result code {code}")
    vm = _RESULT_VALUE.match(rest)
    if not vm:
        raise AgiProtocolError(f"result line without result= {text[:60]!r}")
    value, data = vm.group("value"), (vm.group("data") or "")
    extra = dict(re.findall(r"(\w+)=(\S+)", vm.group("tail") or ""))
    if data == "hangup" or (hangup_on_minus_one and value == "-1"):
        raise AgiHangup(f"result {value} ({data})")
    return AgiResult(value=value, data=data, extra=extra)


def is_usage_start(line: str) -> bool:
    """`520-...` opens a multi-line usage message that ends with a `520 ...` line."""
    return line.startswith("520-")

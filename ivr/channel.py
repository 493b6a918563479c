"""The channel interface flows are written against, and its one AGI implementation.

`Channel` is what a flow may do to a call. `AgiChannel` speaks AGI over any
`LineTransport` (a FastAGI socket or a process-AGI stdin/stdout pair), so both
deployments run the same flow code with the same quoting and hangup rules.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from ivr.agi_protocol import (
    AgiEnv,
    AgiResult,
    build_command,
    check_app_name,
    check_var_name,
    parse_result,
    sanitize_arg,
)

ANY_DIGIT = "0123456789*#"

log = structlog.get_logger("ivr.channel")


class Channel(Protocol):
    """What a flow may do with its call. Every call raises AgiHangup once the caller is gone."""

    env: AgiEnv

    async def answer(self) -> None: ...

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str:
        """Play a prompt; return the escape digit pressed, or '' when it played to the end."""
        ...

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        """Play a prompt and collect digits; returns (digits, timed_out)."""
        ...

    async def wait_for_digit(self, timeout_ms: int) -> str:
        """One digit, or '' on timeout."""
        ...

    async def get_variable(self, name: str) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def exec_app(self, app: str, *args: str) -> int: ...

    async def verbose(self, message: str, level: int = 1) -> None: ...

    async def hangup(self) -> None: ...


class LineTransport(Protocol):
    """Send one command line, return its one response line (raises AgiHangup on EOF)."""

    async def roundtrip(self, command: str) -> str: ...


class AgiChannel:
    """`Channel` over AGI command lines."""

    def __init__(self, env: AgiEnv, transport: LineTransport, prompt_dir: str = "hotline") -> None:
        self.env = env
        self._transport = transport
        self._prompt_dir = prompt_dir.strip("/")

    async def _run(self, verb: str, *args: object, hangup_on_minus_one: bool = True) -> AgiResult:
        line = await self._transport.roundtrip(build_command(verb, *args))
        return parse_result(line, hangup_on_minus_one=hangup_on_minus_one)

    def _sound(self, prompt: str) -> str:
        # Flows name prompts; Asterisk finds them as <sounds>/hotline/<name>.wav.
        name = sanitize_arg(prompt)
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"bad prompt name {prompt!r:.40}")
        return f"{self._prompt_dir}/{name}" if self._prompt_dir else name

    async def answer(self) -> None:
        await self._run("ANSWER")

    # STREAM FILE and GET DATA answer -1 for a missing sound file as well as for a hangup.
    # Treat it as "the prompt failed" and go on: on a dead channel the next command gets
    # 511 (or the HANGUP line / EOF), so a real hangup is still caught one step later.

    async def stream_file(self, prompt: str, escape_digits: str = "") -> str:
        sound = self._sound(prompt)
        result = await self._run(
            "STREAM FILE", sound, _digits(escape_digits), hangup_on_minus_one=False
        )
        if result.value == "-1":
            log.warning("ivr.prompt_failed", prompt=sound)
            return ""
        return _digit_of(result.as_int)

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> tuple[str, bool]:
        sound = self._sound(prompt)
        result = await self._run(
            "GET DATA", sound, int(timeout_ms), int(max_digits), hangup_on_minus_one=False
        )
        if result.value == "-1":
            log.warning("ivr.prompt_failed", prompt=sound)
            return "", False
        digits = "".join(c for c in result.value if c in ANY_DIGIT)
        return digits, result.data == "timeout"

    async def wait_for_digit(self, timeout_ms: int) -> str:
        result = await self._run("WAIT FOR DIGIT", int(timeout_ms))
        return _digit_of(result.as_int)

    async def get_variable(self, name: str) -> str | None:
        result = await self._run("GET VARIABLE", check_var_name(name, allow_function=True))
        return result.data if result.value == "1" else None

    async def set_variable(self, name: str, value: str) -> None:
        await self._run("SET VARIABLE", check_var_name(name), sanitize_arg(value))

    async def exec_app(self, app: str, *args: str) -> int:
        # EXEC passes one option string; the application splits it on commas.
        options = ",".join(sanitize_arg(a).replace(",", " ") for a in args)
        result = await self._run("EXEC", check_app_name(app), options)
        return result.as_int

    async def verbose(self, message: str, level: int = 1) -> None:
        await self._run("VERBOSE", message, max(1, min(int(level), 4)))

    async def hangup(self) -> None:
        await self._run("HANGUP", hangup_on_minus_one=False)


def _digits(escape: str) -> str:
    return "".join(c for c in escape if c in ANY_DIGIT)


def _digit_of(code: int) -> str:
    """AGI reports a pressed digit as its ASCII code, 0 for none."""
    char = chr(code) if 0 < code < 128 else ""
    return char if char in ANY_DIGIT else ""

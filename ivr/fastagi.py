"""A small, bounded FastAGI server on asyncio.

Written instead of panoramisk's fast_agi, which spins forever on a client that
closes before its headers and relies on asyncio.coroutine (gone in 3.11).
Every read is bounded in size and time, every session in duration, and the
number of sessions in count. A session that fails for any reason other than a
hangup gets HOTLINE_DEST=queue (best effort), and the dialplan falls back to the
queue anyway when the variable is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Gauge

from ivr.agi_protocol import (
    MAX_HEADER_BYTES,
    MAX_HEADER_LINES,
    MAX_LINE_BYTES,
    AgiEnv,
    AgiHangup,
    AgiProtocolError,
    build_command,
    is_usage_start,
    parse_header_line,
)
from ivr.channel import AgiChannel, Channel

Handler = Callable[[Channel], Awaitable[None]]

SESSIONS = Counter(
    "hotline_fastagi_sessions_total", "FastAGI sessions by route and outcome", ["route", "outcome"]
)
ERRORS = Counter("hotline_fastagi_errors_total", "FastAGI session failures by kind", ["kind"])
ACTIVE = Gauge("hotline_fastagi_sessions_active", "FastAGI sessions in progress")

log = structlog.get_logger("ivr.fastagi")


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 5.0  # whole header block
    read_timeout_s: float = 120.0  # one command response (prompt + digit timeout)
    session_timeout_s: float = 600.0  # whole IVR session
    max_sessions: int = 500
    fallback_timeout_s: float = 2.0  # for the best-effort HOTLINE_DEST=queue


class StreamTransport:
    """AGI command/response over a FastAGI socket, each read bounded."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_timeout_s: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = read_timeout_s

    async def roundtrip(self, command: str) -> str:
        try:
            self._writer.write(command.encode("utf-8"))
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise AgiHangup(f"write failed: {exc}") from exc
        line = await self._read_line()
        if is_usage_start(line):  # skip the usage text down to its closing `520 ` line
            while not line.startswith("520 "):
                line = await self._read_line()
        return line

    async def _read_line(self) -> str:
        async with asyncio.timeout(self._timeout):
            return await read_bounded_line(self._reader)


async def read_bounded_line(reader: asyncio.StreamReader) -> str:
    """One line, at most MAX_LINE_BYTES (the reader's limit); EOF is a hangup."""
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        raise AgiHangup("EOF from Asterisk") from exc
    except asyncio.LimitOverrunError as exc:
        raise AgiProtocolError("line too long") from exc
    except ConnectionError as exc:
        raise AgiHangup(f"connection lost: {exc}") from exc
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


async def read_headers(reader: asyncio.StreamReader) -> AgiEnv:
    """Read the agi_* block with size and line-count bounds (the caller bounds the time)."""
    values: dict[str, str] = {}
    total = 0
    for _ in range(MAX_HEADER_LINES):
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            # EOF before the blank line: the client went away; never loop on b"".
            raise EarlyClose("connection closed before headers ended") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiProtocolError("header line too long") from exc
        total += len(raw)
        if total > MAX_HEADER_BYTES:
            raise AgiProtocolError("header block too large")
        parsed = parse_header_line(raw)
        if parsed is None:
            return AgiEnv(values)
        values[parsed[0]] = parsed[1]
    raise AgiProtocolError("too many header lines")


class EarlyClose(Exception):
    """The client closed before a complete header block."""


class FastAGIServer:
    """`server = FastAGIServer(routes, host, port); await server.start(); await server.stop()`."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        host: str = "127.0.0.1",
        port: int = 4573,
        limits: Limits | None = None,
        prompt_dir: str = "hotline",
    ) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.prompt_dir = prompt_dir
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active_sessions(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=MAX_LINE_BYTES
        )
        # Port 0 in tests: learn the real one.
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("fastagi.listening", host=self.host, port=self.port, routes=sorted(self.routes))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        log.info("fastagi.stopped", port=self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ACTIVE.inc()
        try:
            if len(self._tasks) > self.limits.max_sessions:
                ERRORS.labels("overload").inc()
                return  # closing at once sends the dialplan to its queue fallback
            await self._session(reader, writer)
        except asyncio.CancelledError:
            # stop() cancels sessions; ending quietly keeps asyncio's stream callback
            # from logging the cancellation as an error. The task is ours and ends here.
            log.info("fastagi.session_cancelled")
        finally:
            ACTIVE.dec()
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.limits.header_timeout_s):
                env = await read_headers(reader)
        except EarlyClose:
            ERRORS.labels("early_close").inc()
            return
        except TimeoutError:
            ERRORS.labels("header_timeout").inc()
            return
        except AgiProtocolError as exc:
            ERRORS.labels("malformed_headers").inc()
            log.warning("fastagi.bad_headers", error=str(exc))
            return
        route = env.route
        with structlog.contextvars.bound_contextvars(
            agi_uniqueid=env.uniqueid, agi_channel=env.channel, route=route
        ):
            await self._run_route(route, env, reader, writer)

    async def _run_route(
        self, route: str, env: AgiEnv, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        transport = StreamTransport(reader, writer, self.limits.read_timeout_s)
        channel = AgiChannel(env, transport, self.prompt_dir)
        handler = self.routes.get(route)
        if handler is None:
            ERRORS.labels("unknown_route").inc()
            SESSIONS.labels("unknown", "unknown_route").inc()
            log.warning("fastagi.unknown_route")
            await self._fallback(transport)
            return
        log.info("fastagi.session_start")
        outcome = "ok"
        try:
            async with asyncio.timeout(self.limits.session_timeout_s):
                await handler(channel)
        except AgiHangup as exc:
            outcome = "hangup"
            log.info("fastagi.hangup", reason=str(exc))
        except TimeoutError:
            outcome = "timeout"
            ERRORS.labels("session_timeout").inc()
            log.warning("fastagi.session_timeout")
            await self._fallback(transport)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = "error"
            kind = "protocol" if isinstance(exc, AgiProtocolError) else "flow"
            ERRORS.labels(kind).inc()
            log.exception("fastagi.flow_failed", kind=kind)
            await self._fallback(transport)
        finally:
            SESSIONS.labels(route, outcome).inc()
            log.info("fastagi.session_end", outcome=outcome)

    async def _fallback(self, transport: StreamTransport) -> None:
        """Best effort: point the dialplan at the queue. Failure is fine; empty means queue too."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.limits.fallback_timeout_s):
                await transport.roundtrip(build_command("SET VARIABLE", "HOTLINE_DEST", "queue"))

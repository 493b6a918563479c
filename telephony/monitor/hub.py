"""The monitor feed's delivery: numbered messages to every connected client. The I/O edge.

The event path only *notes* what changed (`note_facts`, `note_member_event`);
one callback per loop turn builds the messages (telephony.monitor.feed), numbers
them, buffers each for Redis (the store's writer process appends it to the
bounded `hl:<platform>:monitor` stream) and puts it on every matching client's
own bounded queue. Nothing here awaits a client on the event path.

Each client has a sender task that writes its queue to the socket. A client
that falls `max_queue` messages behind is skipped ahead: its queue is dropped
and it gets a fresh snapshot instead. One that skips ahead `max_skips` times in
`skip_window` seconds, or whose socket takes `stall_s` to accept a message, is
disconnected (WebSocket close code 4008). Either way the other clients and the
event path are not held up.

Resuming: a client that comes back with the last `seq` it saw gets every
message after it, from the in-memory ring or else from the Redis stream; when
neither holds them all, or the service restarted in between (a `reset`
message), it gets a snapshot instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from telephony import metrics
from telephony.domain_events import DomainEvent
from telephony.logging import get_logger
from telephony.monitor.feed import SCHEMA_VERSION, DeltaBuilder, FeedLog, Filter, Message, encode
from telephony.monitor.queues import MEMBER_EVENTS

log = get_logger("telephony.monitor")

CLOSE_TOO_SLOW = 4008  # WebSocket close code: the client could not keep up


class MonitorStore(Protocol):
    def append_monitor(self, seq: int, text: str) -> None: ...

    async def monitor_after(self, seq: int, count: int) -> list[tuple[int, str]]: ...

    async def monitor_last_seq(self) -> int: ...


@dataclass(frozen=True)
class HubLimits:
    max_queue: int = 2000  # messages a client may be behind before it is skipped ahead
    max_skips: int = 3  # skips within skip_window before it is disconnected
    skip_window: float = 60.0
    stall_s: float = 10.0  # one message this long unaccepted by the socket: disconnected
    max_replay: int = 10_000  # a resume further behind than this gets a snapshot
    # Bytes a client's connection may hold unsent before its sender waits for the
    # socket (aiohttp's writer limit): bounds the memory a slow client costs.
    socket_buffer: int = 256 * 1024


@dataclass(eq=False)
class Client:
    """One connected screen. `send` writes one message; `close` ends the connection."""

    flt: Filter
    send: Callable[[int, str], Awaitable[Any]]  # (seq, JSON text)
    close: Callable[[int, str], Awaitable[Any]]  # (close code, reason)
    queue: deque[tuple[int, str]] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    skip_ahead: bool = False
    skips: deque[float] = field(default_factory=deque)
    sending_since: float | None = None
    closed: str = ""  # why it was disconnected, once it was
    delivered: int = 0


class MonitorHub:
    def __init__(self, builder: DeltaBuilder, store: MonitorStore, *,
                 limits: HubLimits | None = None, ring_size: int = 4096,
                 clock: Callable[[], float] = time.time, max_delay: float = 0.005) -> None:
        self.builder = builder
        self.store = store
        self.limits = limits or HubLimits()
        self.log = FeedLog(ring_size=ring_size)
        self.clock = clock
        self.clients: set[Client] = set()
        self._scheduled = False
        self.max_delay = max_delay  # how long a change may wait for the event pump's flush
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        platform = builder.platform
        self._m_clients = metrics.MONITOR_CLIENTS.labels(platform=platform)
        self._m_messages = metrics.MONITOR_MESSAGES.labels(platform=platform)
        self._m_skipped = metrics.MONITOR_SKIPPED.labels(platform=platform, reason="queue_full")
        self._m_build = metrics.MONITOR_BUILD_SECONDS.labels(platform=platform)

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Continue the feed's numbering from Redis and mark the restart."""
        try:
            self.log.seq = max(self.log.seq, await self.store.monitor_last_seq())
        except Exception as exc:  # Redis down: number from 0; resumers get snapshots
            log.warning("monitor.last_seq_unavailable", error=repr(exc)[:200])
        self._publish([{"v": SCHEMA_VERSION, "type": "reset", "reason": "service_started",
                        "ts": self.clock(), "rx": None}])
        self._watchdog = asyncio.create_task(self._watch(), name="monitor-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for client in list(self.clients):
            await self.disconnect(client, 1001, "service stopping")

    # -- the event path: note, never build ---------------------------------------
    def note_facts(self, facts: list[DomainEvent], rx: float) -> None:
        if facts:
            self.builder.note_facts(facts, rx)
            self.builder.note_queues(self.builder.queues.on_facts(facts))
            self._schedule()

    def note_member_event(self, event: Mapping[str, Any], rx: float) -> None:
        if event.get("Event") in MEMBER_EVENTS:
            changed = self.builder.queues.on_ami_event(event)
            queue = event.get("Queue")
            if queue:
                self.builder.note_queues([str(queue)])
            self.builder.note_agents(changed, rx)
            self._schedule()

    def note_agents(self, agents: set[str], rx: float) -> None:
        self.builder.note_agents(agents, rx)
        self._schedule()

    def _schedule(self) -> None:
        """Build within `max_delay` at the latest; the event pump builds sooner, as soon
        as it has no event waiting (`flush`), so one burst of events (a transfer is
        dozens) makes one message per call, not one per event to every client."""
        if self._scheduled:
            return
        self._scheduled = True
        try:
            asyncio.get_running_loop().call_later(self.max_delay, self._flush_due)
        except RuntimeError:  # no loop (a replay, a unit test): build now
            self.flush()

    def _flush_due(self) -> None:
        if self._scheduled:
            self.flush()

    def flush(self) -> None:
        """Build, number, store and fan out every pending message (one loop turn's worth)."""
        self._scheduled = False
        if not self.builder.pending:
            return
        started = time.perf_counter()
        self._publish(self.builder.build(self.clock()))
        self._m_build.observe(time.perf_counter() - started)

    def _publish(self, messages: list[Message]) -> None:
        append = self.store.append_monitor
        clients = self.clients
        for msg in messages:
            seq, text = self.log.append(msg)
            append(seq, text)
            for client in clients:
                if client.flt.matches(msg):
                    self._push(client, seq, text)
        self._m_messages.inc(len(messages))

    def _push(self, client: Client, seq: int, text: str) -> None:
        if client.skip_ahead:
            return  # a snapshot is coming; what it covers need not be queued
        if len(client.queue) >= self.limits.max_queue:
            client.queue.clear()
            client.skip_ahead = True
            self._m_skipped.inc()
            now = time.monotonic()
            client.skips.append(now)
            while client.skips and client.skips[0] < now - self.limits.skip_window:
                client.skips.popleft()
            if len(client.skips) > self.limits.max_skips:
                self._spawn_disconnect(client, "skipped ahead too often")
        else:
            client.queue.append((seq, text))
        client.wakeup.set()

    # -- clients ------------------------------------------------------------------
    async def connect(self, flt: Filter, since: int | None,
                      send: Callable[[int, str], Awaitable[Any]],
                      close: Callable[[int, str], Awaitable[Any]]) -> Client:
        """Register a client; its queue starts with a snapshot or the messages it missed."""
        client = Client(flt, send, close)
        backlog: list[tuple[int, str]] | None = None
        reason = "connect"
        if since is not None:
            backlog, reason = await self._missed(since, flt)
        # From here to registration nothing awaits: no message can slip between
        # the snapshot (or backlog) and the live messages that follow it.
        if backlog is None:
            client.queue.append(self._snapshot_entry(flt, reason))
        else:
            client.queue.extend(backlog)
        self.clients.add(client)
        self._m_clients.set(len(self.clients))
        client.wakeup.set()
        return client

    def _snapshot_entry(self, flt: Filter, reason: str) -> tuple[int, str]:
        return self.log.seq, encode(self.builder.snapshot(self.log.seq, self.clock(), flt,
                                                          reason))

    async def _missed(self, since: int, flt: Filter
                      ) -> tuple[list[tuple[int, str]] | None, str]:
        """Messages after `since` that `flt` lets through, or None and why a snapshot is due."""
        if since > self.log.seq:
            return None, "unknown_seq"
        entries = self.log.after(since)
        if entries is None:
            try:
                stored = await self.store.monitor_after(since, self.limits.max_replay + 1)
            except Exception as exc:
                log.warning("monitor.replay_unavailable", error=repr(exc)[:200])
                return None, "too_far_behind"
            if not stored or stored[0][0] != since + 1 or len(stored) > self.limits.max_replay:
                return None, "too_far_behind"
            # The ring must hold what Redis does not have yet (writes are behind).
            rest = self.log.after(stored[-1][0])
            if rest is None:
                return None, "too_far_behind"
            decoded = [(seq, orjson.loads(text), text) for seq, text in stored]
            entries = decoded + rest
        if len(entries) > self.limits.max_replay:
            return None, "too_far_behind"
        if any(msg["type"] == "reset" for _, msg, _ in entries):
            return None, "restart"
        return [(seq, text) for seq, msg, text in entries if flt.matches(msg)], "resume"

    async def run_client(self, client: Client) -> None:
        """Write the client's queue until it is disconnected; returns when it is."""
        try:
            while not client.closed:
                await client.wakeup.wait()
                client.wakeup.clear()
                if client.skip_ahead:
                    client.skip_ahead = False
                    client.queue.clear()
                    client.queue.append(self._snapshot_entry(client.flt, "skipped_ahead"))
                while client.queue and not client.closed:
                    seq, text = client.queue.popleft()
                    client.sending_since = time.monotonic()
                    await client.send(seq, text)
                    client.sending_since = None
                    client.delivered += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass  # the peer went away (aiohttp raises these on a closing socket)
        finally:
            self._forget(client)

    def _forget(self, client: Client) -> None:
        self.clients.discard(client)
        self._m_clients.set(len(self.clients))

    async def disconnect(self, client: Client, code: int, why: str) -> None:
        if client.closed:
            return
        client.closed = why
        client.wakeup.set()
        self._forget(client)
        if code == CLOSE_TOO_SLOW:
            metrics.MONITOR_DISCONNECTS.labels(platform=self.builder.platform,
                                               reason="too_slow").inc()
            log.warning("monitor.client_too_slow", why=why, filter=client.flt.__dict__)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(code, why), 2.0)

    def _spawn_disconnect(self, client: Client, why: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self.disconnect(client, CLOSE_TOO_SLOW, why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        """Disconnect clients whose socket has not taken a message for `stall_s`."""
        while True:
            await asyncio.sleep(min(1.0, self.limits.stall_s / 2))
            limit = time.monotonic() - self.limits.stall_s
            for client in list(self.clients):
                if client.sending_since is not None and client.sending_since < limit:
                    await self.disconnect(client, CLOSE_TOO_SLOW, "socket stalled")

    # -- read API -----------------------------------------------------------------
    def snapshot(self, flt: Filter, reason: str = "read") -> Message:
        return self.builder.snapshot(self.log.seq, self.clock(), flt, reason)

"""One resilient AMI session per Asterisk node, on panoramisk's wire format.

panoramisk 1.4 gives us Action/Message (serialisation, ActionIDs, multi-response
completion). Its `Manager` lifecycle has gaps we cannot live with (no action
timeout, Ping without a Pong check, blind re-send of unanswered actions on
`FullyBooted`), so this module owns the connection lifecycle itself:

- every action has a timeout and fails with a typed error (`AmiTimeout`,
  `AmiError`, `AmiDisconnected`, `AmiProtocolError`);
- a watchdog pings every `ping_interval` and drops a link that does not answer
  within `ping_timeout` (half-open TCP);
- reconnect uses jittered exponential backoff;
- actions pending when a link dies fail with `AmiDisconnected` and are never
  re-sent: the caller reconciles from events;
- `ready` (an asyncio.Event), connect/disconnect hooks and the
  `hotline_ami_connected{node}` gauge say whether the node is usable;
- events are filtered on the server (`Filter` action) and again locally, and
  delivered through a bounded queue whose overflow is counted.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from panoramisk.actions import Action
from panoramisk.message import Message

from telephony import metrics
from telephony.lab.topology import HOST, Node
from telephony.logging import get_logger

EOM = b"\r\n\r\n"  # end of one AMI message
BANNER_PREFIX = "Asterisk Call Manager/"
MAX_UNTERMINATED_BYTES = 1 << 20  # a peer that never ends a message is broken
_FAILED_RESPONSES = frozenset({"error", "fail", "failure"})
_EVENT_PREFIX = "Event: "
_UNQUOTED = frozenset(Message.quoted_keys)  # headers panoramisk URL-unquotes
_QUOTED_RE = re.compile("^(?:" + "|".join(map(re.escape, _UNQUOTED)) + "): ",
                        re.IGNORECASE | re.MULTILINE)


class AmiEvent(dict):
    """One AMI event: its headers as a plain dict (wire case), plus the session.

    Events are the bulk of AMI traffic, so they skip panoramisk's Message (a
    case-insensitive dict filled header by header); replies still use Message.
    """

    __slots__ = ("manager", "received_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.manager: Any = None
        # time.time() when its bytes arrived (the TCP read that completed it); 0: unknown
        self.received_at = 0.0


def parse_event(block: str) -> AmiEvent:
    """An event's headers, read as panoramisk's Message.from_line reads them.

    "Key: value" lines; a repeated key (ChanVariable) becomes a list of its
    values; lines without ": " are skipped; `Result` is URL-unquoted. One
    difference: the same header spelt in two letter cases in one event stays two
    keys here, where panoramisk keeps the last; Asterisk never sends that.
    """
    headers = AmiEvent()  # filled in place: an event is never copied on the way in
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            old = headers.get(key)
            if old is None:
                headers[key] = value
            elif type(old) is list:
                old.append(value)
            else:
                headers[key] = [old, value]
    if _QUOTED_RE.search(block):  # rare (AGI results): one regex scan instead of a test per line
        for key, value in headers.items():
            if key.lower() in _UNQUOTED:
                headers[key] = ([unquote(v).strip() for v in value] if type(value) is list
                                else unquote(value).strip())
    return headers


_ACTION_ID_RE = re.compile(r"^ActionID:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)

Hook = Callable[["AmiSession"], Awaitable[None] | None]


# --- errors -----------------------------------------------------------------
class AmiError(Exception):
    """An AMI action failed. `response` is the Asterisk reply when there was one."""

    def __init__(self, message: str, *, action: str = "", response: Message | None = None):
        super().__init__(message)
        self.action = action
        self.response = response


class AmiTimeout(AmiError):
    """No (complete) reply within the action's timeout. The action may still run."""


class AmiDisconnected(AmiError):
    """The link is down, or went down before the reply.

    `sent` is True when the action had been written: it may or may not have run
    on Asterisk, so it must be reconciled from events, never blindly re-sent.
    """

    def __init__(self, message: str, *, action: str = "", sent: bool = False):
        super().__init__(message, action=action)
        self.sent = sent


class AmiProtocolError(AmiError):
    """The reply could not be understood (no Response header, garbage...)."""


class AmiLoginError(AmiError):
    """Asterisk refused the Login."""


# --- results ----------------------------------------------------------------
@dataclass
class AmiListResult:
    """The reply to an EventList action: the ack, the item events, the Complete event."""

    response: Message
    items: list[Message] = field(default_factory=list)
    complete: Message | None = None

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class _ListAction(Action):
    """An EventList action that cannot hang.

    panoramisk waits for a second message when `as_list` is set, even when the
    first reply is an Error; here an Error ends the action at once, and an
    `EventList: Complete` header ends it even if the event name is unusual.
    """

    def add_message(self, message: Message) -> bool | None:
        if not self.responses and message.response.lower() in _FAILED_RESPONSES:
            self.responses.append(message)
            if not self.future.done():
                self.future.set_result([message])
            return True
        return super().add_message(message)

    @property
    def completed(self) -> bool:
        last = self.responses[-1]
        if str(last.get("EventList", "")).lower() == "complete":
            return True
        return bool(super().completed)


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Equal-jitter exponential backoff: half fixed, half random, capped.

    Jitter keeps several service instances from reconnecting in lockstep after
    an Asterisk restart; the fixed half keeps a minimum pause.
    """
    base = min(cap, initial * (2 ** max(0, attempt - 1)))
    return base / 2 + rng.uniform(0, base / 2)


# --- protocol ---------------------------------------------------------------
class _AmiProtocol(asyncio.Protocol):
    """Frames AMI messages, matches replies to pending actions, hands events up."""

    def __init__(self, session: AmiSession):
        self.session = session
        self.transport: asyncio.Transport | None = None
        self.pending: dict[str, Action] = {}
        self.version: str | None = None
        self.closed = False
        self.last_received = time.monotonic()
        self._received_at = 0.0
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, action: Action) -> asyncio.Future:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise AmiDisconnected(
                f"{self.session.node_name}: link closed", action=action["Action"]
            )
        self.pending[action.id] = action
        self.transport.write(str(action).encode("utf-8"))
        return action.future

    def forget(self, action: Action) -> None:
        self.pending.pop(action.id, None)

    # Framing on bytes, decoding whole messages: decoding chunk by chunk (as
    # panoramisk does) corrupts multi-byte UTF-8 split across TCP reads.
    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        self._received_at = time.time()  # one clock read per TCP read, not per event
        self._buffer += data
        *blocks, self._buffer = self._buffer.split(EOM)
        for raw in blocks:
            try:
                self._handle_block(raw.decode("utf-8", "replace").strip())
            except Exception:  # one bad message must not take the link down
                self.session.log.exception("ami_message_handling_failed")
        if len(self._buffer) > MAX_UNTERMINATED_BYTES:
            self.session._note_malformed(self._buffer[:200].decode("utf-8", "replace"), None)
            self._buffer = b""
            self.abort()

    def _handle_block(self, block: str) -> None:
        if block.startswith(BANNER_PREFIX):
            banner, _, block = block.partition("\r\n")
            self.version = banner[len(BANNER_PREFIX) :].strip()
        if not block:
            return
        if block.startswith(_EVENT_PREFIX):
            event = parse_event(block)
            event.received_at = self._received_at
            # Part of a list reply (e.g. CoreShowChannel) only if its action is pending.
            if not any(key in self.pending
                       for key in (event.get("CommandID"), event.get("ActionID")) if key):
                self.session._on_event(event)
                return
        message = Message.from_line(block)
        if message is None:
            match = _ACTION_ID_RE.search(block)
            action_id = match.group(1) if match else None
            self.session._note_malformed(block, action_id)
            self._fail_action(action_id, "reply without a Response header")
            return
        action = self.pending.get(message.id) or self.pending.get(message.action_id or "")
        if action is None:
            if "event" in message:
                self.session._on_event(message)
            else:
                # Usually the late reply to an action that already timed out.
                self.session._note_unmatched(message)
            return
        try:
            done = action.add_message(message)
        except Exception as exc:  # a reply panoramisk's completion logic chokes on
            self.session._note_malformed(block, action.id)
            self._fail_action(action.id, f"unreadable reply: {exc!r}")
            return
        if done:
            self.forget(action)

    def _fail_action(self, action_id: str | None, why: str) -> None:
        action = self.pending.pop(action_id, None) if action_id else None
        if action is not None and not action.future.done():
            action.future.set_exception(
                AmiProtocolError(
                    f"{self.session.node_name}: {action['Action']}: {why}", action=action["Action"]
                )
            )

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_pending()
        self.session._on_connection_lost(self, exc)

    def _fail_pending(self) -> None:
        # Never queue these for re-sending (panoramisk does): they may have run.
        pending, self.pending = self.pending, {}
        for action in {id(a): a for a in pending.values()}.values():
            if not action.future.done():
                action.future.set_exception(
                    AmiDisconnected(
                        f"{self.session.node_name}: connection lost before the reply to "
                        f"{action['Action']}; it may have run, reconcile from events",
                        action=action["Action"],
                        sent=True,
                    )
                )


# --- session ----------------------------------------------------------------
class AmiSession:
    """A self-healing AMI connection to one Asterisk node.

    Use `await start()`, `await wait_ready()`, then `send_action(...)` or the
    list helpers; consume events from `event_queue` (a bounded asyncio.Queue of
    AmiEvents, plain dicts each with `.manager` set to this session). `events`
    is the allow-list of event names (None: all).
    """

    def __init__(
        self,
        node_name: str,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        events: Iterable[str] | None = None,
        server_filter: bool = True,
        login_events: str = "on",
        action_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 2.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
        queue_size: int = 10_000,
        event_queue: asyncio.Queue[Message] | None = None,
        on_connected: Hook | None = None,
        on_disconnected: Hook | None = None,
        on_event: Callable[[Message], None] | None = None,
        rng: random.Random | None = None,
    ):
        self.node_name = node_name
        self.host, self.port = host, port
        self._username, self._secret = username, secret
        self.allowed_events: frozenset[str] | None = frozenset(events) if events else None
        self.server_filter = server_filter
        self.server_filter_active = False
        self.login_events = login_events
        self.action_timeout = action_timeout
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect_initial, self.reconnect_max = reconnect_initial, reconnect_max
        # Pass one shared `event_queue` to several sessions to merge their nodes.
        self.event_queue: asyncio.Queue[Message] = event_queue or asyncio.Queue(queue_size)
        self.ready = asyncio.Event()
        self.generation = 0  # increments on every successful login
        self.dropped_events = 0
        self.needs_resync = False  # set when events were dropped; recovery clears it
        self.asterisk_version: str | None = None
        self._connected_hooks: list[Hook] = [on_connected] if on_connected else []
        self._disconnected_hooks: list[Hook] = [on_disconnected] if on_disconnected else []
        self._on_event_cb = on_event
        self._rng = rng or random.Random()
        self._protocol: _AmiProtocol | None = None
        self._lost: asyncio.Future[str] | None = None
        self._runner: asyncio.Task | None = None
        self._hook_tasks: set[asyncio.Task] = set()
        self._closing = False
        self.log = get_logger("telephony.ami", node=node_name)
        self._m_connected = metrics.AMI_CONNECTED.labels(node=node_name)
        self._m_events = metrics.EVENTS.labels(node=node_name)
        self._m_filtered = metrics.EVENTS_FILTERED.labels(node=node_name)
        self._m_dropped = metrics.EVENT_QUEUE_DROPPED.labels(node=node_name)
        self._m_malformed = metrics.AMI_MALFORMED.labels(node=node_name)
        self._m_connected.set(0)

    @classmethod
    def for_node(cls, node: Node, username: str, secret: str, **kwargs: Any) -> AmiSession:
        """A session to one lab node (see telephony/lab/topology.py)."""
        return cls(node.name, HOST, node.ami_port, username, secret, **kwargs)

    # --- lifecycle ------------------------------------------------------
    def add_connected_hook(self, hook: Hook) -> None:
        """Run `hook(session)` after every login, e.g. to rebuild state from Asterisk."""
        self._connected_hooks.append(hook)

    def add_disconnected_hook(self, hook: Hook) -> None:
        self._disconnected_hooks.append(hook)

    async def start(self) -> None:
        """Start connecting in the background; returns at once (see `wait_ready`)."""
        if self._runner is None:
            self._closing = False
            self._runner = asyncio.create_task(self._run(), name=f"ami-{self.node_name}")

    async def wait_ready(self, within: float | None = None) -> None:
        """Wait until logged in; AmiTimeout after `within` seconds."""
        try:
            await asyncio.wait_for(self.ready.wait(), within)
        except TimeoutError:
            raise AmiTimeout(f"{self.node_name}: not connected after {within}s") from None

    async def close(self) -> None:
        self._closing = True
        if self._protocol is not None:
            self._protocol.abort()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        for task in list(self._hook_tasks):
            task.cancel()
        await asyncio.gather(*self._hook_tasks, return_exceptions=True)
        self._mark_down()

    async def __aenter__(self) -> AmiSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                protocol = await self._connect_and_login()
            except (OSError, TimeoutError, AmiError) as exc:
                attempt += 1
                delay = backoff_delay(
                    attempt, self.reconnect_initial, self.reconnect_max, self._rng
                )
                self.log.warning("ami_connect_failed", error=str(exc), attempt=attempt,
                                 retry_in=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._mark_up()
            watchdog = asyncio.create_task(
                self._watchdog(protocol), name=f"ami-ping-{self.node_name}"
            )
            assert self._lost is not None
            cause = await self._lost
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            self._mark_down()
            if self._closing:
                return
            metrics.AMI_RECONNECTS.labels(node=self.node_name, cause=cause).inc()
            self.log.warning("ami_link_lost", cause=cause)
            self._run_hooks(self._disconnected_hooks)
            attempt = 1
            await asyncio.sleep(
                backoff_delay(attempt, self.reconnect_initial, self.reconnect_max, self._rng)
            )

    async def _connect_and_login(self) -> _AmiProtocol:
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _AmiProtocol(self), self.host, self.port),
            self.connect_timeout,
        )
        self._protocol = protocol
        self._lost = loop.create_future()
        try:
            reply = await self._roundtrip(
                protocol,
                Action({"Action": "Login", "Username": self._username,
                        "Secret": self._secret, "Events": self.login_events}, as_list=False),
                self.action_timeout,
                check=False,
            )
            if not reply.success:
                raise AmiLoginError(f"{self.node_name}: login refused: {reply.message}",
                                    action="Login", response=reply)
            self.asterisk_version = protocol.version
            await self._install_server_filter(protocol)
        except BaseException:
            protocol.abort()
            self._protocol = None
            raise
        return protocol

    async def _install_server_filter(self, protocol: _AmiProtocol) -> None:
        """Ask Asterisk to send only the allowed events (needs `system` write permission)."""
        self.server_filter_active = False
        if not (self.server_filter and self.allowed_events):
            return
        replies = await asyncio.gather(
            *(
                self._roundtrip(
                    protocol,
                    Action({"Action": "Filter", "Operation": "Add",
                            "MatchCriteria": f"action(include),name({name})"}, as_list=False),
                    self.action_timeout,
                    check=False,
                )
                for name in sorted(self.allowed_events)
            )
        )
        refused = [r for r in replies if not r.success]
        if refused:
            # Not fatal: the local allow-list still applies, we just pay for the traffic.
            self.log.warning("ami_filter_refused", reason=refused[0].message,
                             hint="grant write=system or set eventfilter in manager.conf")
        else:
            self.server_filter_active = True

    async def _watchdog(self, protocol: _AmiProtocol) -> None:
        """Detect a half-open link: Ping must be answered within `ping_timeout`."""
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._roundtrip(
                    protocol, Action({"Action": "Ping"}, as_list=False), self.ping_timeout,
                    check=False,
                )
            except AmiTimeout:
                # A busy node (Ping queued behind a long CoreShowChannels) still
                # sends bytes; a half-open link sends none.
                if time.monotonic() - protocol.last_received < self.ping_timeout:
                    self.log.info("ami_ping_late_but_link_alive")
                    continue
                self.log.warning("ami_ping_timeout", timeout=self.ping_timeout)
                self._declare_lost(protocol, "watchdog")
                protocol.abort()
                return
            except AmiError:
                return  # link already gone; _run handles it

    def _mark_up(self) -> None:
        self.generation += 1
        self._m_connected.set(1)
        self.ready.set()
        self.log.info("ami_ready", generation=self.generation, version=self.asterisk_version,
                      server_filter=self.server_filter_active)
        self._run_hooks(self._connected_hooks)

    def _mark_down(self) -> None:
        self.ready.clear()
        self._m_connected.set(0)
        self._protocol = None

    def _run_hooks(self, hooks: list[Hook]) -> None:
        # Hooks run as tasks so a slow recovery never holds up event reading.
        for hook in hooks:
            try:
                result = hook(self)
            except Exception:
                self.log.exception("ami_hook_failed", hook=getattr(hook, "__name__", repr(hook)))
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Future) -> None:
        self._hook_tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            self.log.error("ami_hook_failed", error=repr(task.exception()))

    def _declare_lost(self, protocol: _AmiProtocol, cause: str) -> None:
        if protocol is self._protocol and self._lost is not None and not self._lost.done():
            # Not ready from this instant, so no new action is written to a dead link.
            self.ready.clear()
            self._m_connected.set(0)
            self._lost.set_result(cause)

    # --- callbacks from the protocol ----------------------------------------
    def _on_connection_lost(self, protocol: _AmiProtocol, exc: Exception | None) -> None:
        self._declare_lost(protocol, "closed" if exc is None else "error")

    def _on_event(self, message: Message | AmiEvent) -> None:
        name = message.get("Event", "")
        if self.allowed_events is not None and name not in self.allowed_events:
            self._m_filtered.inc()
            return
        message.manager = self
        self._m_events.inc()
        if self._on_event_cb is not None:
            try:
                self._on_event_cb(message)
            except Exception:
                self.log.exception("ami_event_callback_failed", ami_event=name)
        try:
            self.event_queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped_events += 1
            self.needs_resync = True
            self._m_dropped.inc()
            if self.dropped_events == 1 or self.dropped_events % 1000 == 0:
                self.log.error("ami_event_queue_full", dropped=self.dropped_events,
                               maxsize=self.event_queue.maxsize, ami_event=name)

    def _note_malformed(self, block: str, action_id: str | None) -> None:
        self._m_malformed.inc()
        self.log.warning("ami_malformed_message", action_id=action_id, block=block[:200])

    def _note_unmatched(self, message: Message) -> None:
        self.log.debug("ami_unmatched_response", action_id=message.action_id,
                       response=message.get("Response", ""))

    # --- actions ------------------------------------------------------------
    async def send_action(
        self, action: Mapping[str, Any], *, reply_timeout: float | None = None, check: bool = True
    ) -> Message:
        """Send one single-reply action and return its reply.

        Raises AmiTimeout, AmiDisconnected, AmiProtocolError, or (with `check`)
        AmiError when Asterisk answers Error. Never re-sent on reconnect.
        Originate with `Async: true` returns the "queued" ack here; its
        `OriginateResponse` arrives later as an ordinary event.
        """
        return await self.submit(action, reply_timeout=reply_timeout, check=check)

    def submit(
        self, action: Mapping[str, Any], *, reply_timeout: float | None = None, check: bool = True
    ) -> Coroutine[Any, Any, Message]:
        """`send_action`, but the action is on the wire when this returns; await the result
        for its reply (same errors). Lets a caller pipeline actions without a loop turn
        between them. AmiDisconnected is raised here when there is no link to write to.
        """
        return self._roundtrip(
            self._live_protocol(action), Action(dict(action), as_list=False),
            reply_timeout or self.action_timeout, check,
        )

    async def send_list_action(
        self,
        action: Mapping[str, Any],
        *,
        reply_timeout: float | None = None,
        empty_on: Iterable[str] = (),
    ) -> AmiListResult:
        """Send an EventList action (CoreShowChannels, BridgeList, QueueStatus...).

        An Error reply whose Message starts with one of `empty_on` counts as an
        empty list (ConfbridgeList says "No active conferences." instead).
        """
        replies = await self._roundtrip(
            self._live_protocol(action), _ListAction(dict(action), as_list=True),
            reply_timeout or self.action_timeout, check=False,
        )
        if not isinstance(replies, list):
            replies = [replies]
        head, rest = replies[0], replies[1:]
        if head.response.lower() in _FAILED_RESPONSES:
            text = head.get("Message", "")
            if any(text.startswith(prefix) for prefix in empty_on):
                return AmiListResult(response=head)
            raise AmiError(f"{self.node_name}: {action.get('Action')} failed: {text}",
                           action=str(action.get("Action")), response=head)
        complete = rest.pop() if rest and _is_list_end(rest[-1]) else None
        return AmiListResult(response=head, items=rest, complete=complete)

    def _live_protocol(self, action: Mapping[str, Any]) -> _AmiProtocol:
        protocol = self._protocol
        if protocol is None or not self.ready.is_set():
            raise AmiDisconnected(
                f"{self.node_name}: not connected", action=str(action.get("Action"))
            )
        return protocol

    def _roundtrip(
        self, protocol: _AmiProtocol, action: Action, limit: float, check: bool
    ) -> Coroutine[Any, Any, Any]:
        """Writes the action now (a plain function); the coroutine awaits the reply."""
        started = time.perf_counter()
        future = protocol.send(action)
        return self._reply(protocol, action, future, started, limit, check)

    async def _reply(self, protocol: _AmiProtocol, action: Action, future: asyncio.Future,
                     started: float, limit: float, check: bool) -> Any:
        name = str(action["Action"])
        try:
            reply = await asyncio.wait_for(future, limit)
        except TimeoutError:
            protocol.forget(action)
            self._count_failure(name, "timeout")
            raise AmiTimeout(f"{self.node_name}: {name} got no reply within {limit}s",
                             action=name) from None
        except AmiError as exc:
            self._count_failure(name, type(exc).__name__)
            raise
        metrics.AMI_ACTION_SECONDS.labels(node=self.node_name, action=name).observe(
            time.perf_counter() - started
        )
        if check and isinstance(reply, Message) and reply.response.lower() in _FAILED_RESPONSES:
            self._count_failure(name, "error")
            raise AmiError(f"{self.node_name}: {name} failed: {reply.get('Message', '')}",
                           action=name, response=reply)
        return reply

    def _count_failure(self, action: str, reason: str) -> None:
        metrics.AMI_ACTION_FAILURES.labels(node=self.node_name, action=action, reason=reason).inc()

    # --- convenience ----------------------------------------------------------
    async def ping(self, reply_timeout: float | None = None) -> Message:
        return await self.send_action({"Action": "Ping"}, reply_timeout=reply_timeout)

    async def core_show_channels(self, reply_timeout: float | None = None) -> AmiListResult:
        return await self.send_list_action(
            {"Action": "CoreShowChannels"}, reply_timeout=reply_timeout
        )

    async def bridge_list(self, reply_timeout: float | None = None) -> AmiListResult:
        return await self.send_list_action({"Action": "BridgeList"}, reply_timeout=reply_timeout)

    async def bridge_info(
        self, bridge_id: str, reply_timeout: float | None = None
    ) -> AmiListResult:
        return await self.send_list_action(
            {"Action": "BridgeInfo", "BridgeUniqueid": bridge_id}, reply_timeout=reply_timeout
        )

    async def queue_status(
        self, queue: str | None = None, reply_timeout: float | None = None
    ) -> AmiListResult:
        action = {"Action": "QueueStatus"} | ({"Queue": queue} if queue else {})
        return await self.send_list_action(action, reply_timeout=reply_timeout)

    async def confbridge_list_rooms(self, reply_timeout: float | None = None) -> AmiListResult:
        return await self.send_list_action(
            {"Action": "ConfbridgeListRooms"}, reply_timeout=reply_timeout,
            empty_on=("No active conferences",),
        )

    async def confbridge_list(
        self, conference: str, reply_timeout: float | None = None
    ) -> AmiListResult:
        return await self.send_list_action(
            {"Action": "ConfbridgeList", "Conference": conference}, reply_timeout=reply_timeout,
            empty_on=("No active conferences", "No Conference by that name"),
        )


def _is_list_end(message: Message) -> bool:
    return (
        str(message.get("EventList", "")).lower() == "complete"
        or message.get("Event", "").endswith("Complete")
    )

"""AmiSession against a small fake AMI server on loopback.

The fake speaks just enough AMI (banner, Login, Ping, Filter, EventList
replies, events) and lets each test make it misbehave: stay silent, drop the
link, send garbage.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable

import pytest

from telephony import metrics
from telephony.ami import (
    AmiDisconnected,
    AmiError,
    AmiProtocolError,
    AmiSession,
    AmiTimeout,
    backoff_delay,
)
from telephony.lab.topology import NODE_110

SECRET = "s3cret"
Responder = Callable[["FakeConn", dict[str, str]], None]


def encode(headers: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"\r\n"


class FakeConn:
    def __init__(self, server: FakeAmi, writer: asyncio.StreamWriter):
        self.server = server
        self.writer = writer
        self.silent = False  # half-open: read everything, answer nothing
        self.ignore_ping = False  # busy node: Ping queued behind other work

    def send(self, headers: dict[str, str]) -> None:
        self.writer.write(encode(headers))

    def reply(self, action: dict[str, str], **headers: str) -> None:
        self.send({"Response": "Success", "ActionID": action["ActionID"], **headers})

    def close(self) -> None:
        self.writer.close()


class FakeAmi:
    def __init__(self) -> None:
        self.conns: list[FakeConn] = []
        self.received: list[tuple[int, dict[str, str]]] = []  # (connection index, action)
        self.responders: dict[str, Responder] = {}
        self.refuse_filter = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for conn in self.conns:
            conn.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def actions(self, name: str) -> list[tuple[int, dict[str, str]]]:
        return [(i, a) for i, a in self.received if a.get("Action", "").lower() == name.lower()]

    def broadcast(self, headers: dict[str, str]) -> None:
        self.conns[-1].send(headers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConn(self, writer)
        self.conns.append(conn)
        index = len(self.conns) - 1
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode().strip().split("\r\n")
                action = dict(line.split(": ", 1) for line in lines if ": " in line)
                self.received.append((index, action))
                busy = conn.ignore_ping and action.get("Action", "").lower() == "ping"
                if not conn.silent and not busy:
                    self._answer(conn, action)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, conn: FakeConn, action: dict[str, str]) -> None:
        name = action.get("Action", "").lower()
        if name in self.responders:
            self.responders[name](conn, action)
        elif name == "login":
            if action.get("Secret") == SECRET:
                conn.reply(action, Message="Authentication accepted")
                conn.send({"Event": "FullyBooted", "Status": "Fully Booted"})
            else:
                conn.send({"Response": "Error", "ActionID": action["ActionID"],
                           "Message": "Authentication failed"})
        elif name == "ping":
            conn.reply(action, Ping="Pong", Timestamp=f"{time.time():.6f}")
        elif name == "filter" and self.refuse_filter:
            conn.send({"Response": "Error", "ActionID": action["ActionID"],
                       "Message": "Permission denied"})
        else:
            conn.reply(action)


@pytest.fixture
async def ami():
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


def make_session(ami: FakeAmi, node: str, **kwargs) -> AmiSession:
    options = dict(
        action_timeout=1.0, ping_interval=0.2, ping_timeout=0.3,
        reconnect_initial=0.05, reconnect_max=0.2, rng=random.Random(7),
    )
    options.update(kwargs)
    return AmiSession(node, "127.0.0.1", ami.port, "hotline", SECRET, **options)


def gauge(node: str) -> float | None:
    return metrics.REGISTRY.get_sample_value("hotline_ami_connected", {"node": node})


async def eventually(predicate: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# --- login, readiness, hooks ------------------------------------------------------
async def test_login_sets_ready_gauge_and_runs_connected_hook(ami):
    seen: list[int] = []

    async def recover(session: AmiSession) -> None:
        channels = await session.core_show_channels()
        seen.append(len(channels))

    ami.responders["coreshowchannels"] = list_responder("CoreShowChannel", 2)
    async with make_session(ami, "login-ok", on_connected=recover) as session:
        await session.wait_ready(2)
        assert gauge("login-ok") == 1
        assert session.generation == 1
        assert session.asterisk_version == "9.0.0"
        login = ami.actions("Login")[0][1]
        assert login["Username"] == "hotline" and login["Secret"] == SECRET
        await eventually(lambda: seen == [2])
    assert gauge("login-ok") == 0


async def test_refused_login_is_retried_and_never_ready(ami):
    session = AmiSession("login-bad", "127.0.0.1", ami.port, "hotline", "wrong",
                         reconnect_initial=0.05, reconnect_max=0.1)
    async with session:
        with pytest.raises(AmiTimeout):
            await session.wait_ready(0.6)
        assert len(ami.actions("Login")) >= 2  # backoff retried
        assert gauge("login-bad") == 0
        with pytest.raises(AmiDisconnected):
            await session.ping()


# --- timeouts -------------------------------------------------------------------
async def test_action_timeout_raises_and_late_reply_is_ignored(ami):
    late: list[FakeConn] = []

    def never_now(conn: FakeConn, action: dict[str, str]) -> None:
        late.append(conn)
        asyncio.get_running_loop().call_later(0.3, lambda: conn.reply(action, Message="too late"))

    ami.responders["slowthing"] = never_now
    async with make_session(ami, "timeout", ping_interval=10) as session:
        await session.wait_ready(2)
        started = time.monotonic()
        with pytest.raises(AmiTimeout, match=r"SlowThing got no reply within 0\.1s"):
            await session.send_action({"Action": "SlowThing"}, reply_timeout=0.1)
        assert time.monotonic() - started < 0.5
        await asyncio.sleep(0.4)  # the late reply arrives and must not confuse the next action
        pong = await session.ping()
        assert pong["Ping"] == "Pong"
        assert session.ready.is_set()
        failures = metrics.REGISTRY.get_sample_value(
            "hotline_ami_action_failures_total",
            {"node": "timeout", "action": "SlowThing", "reason": "timeout"},
        )
        assert failures == 1


async def test_error_reply_raises_ami_error_with_response(ami):
    ami.responders["redirect"] = lambda c, a: c.send(
        {"Response": "Error", "ActionID": a["ActionID"], "Message": "Channel not specified"}
    )
    async with make_session(ami, "error-reply") as session:
        await session.wait_ready(2)
        with pytest.raises(AmiError, match="Channel not specified") as info:
            await session.send_action({"Action": "Redirect"})
        assert info.value.response["Message"] == "Channel not specified"
        unchecked = await session.send_action({"Action": "Redirect"}, check=False)
        assert unchecked["Response"] == "Error"


# --- half-open link and reconnect ---------------------------------------------------
async def test_watchdog_detects_half_open_link_and_reconnects(ami):
    downs: list[int] = []
    ups: list[int] = []
    async with make_session(
        ami, "half-open",
        on_connected=lambda s: ups.append(s.generation),
        on_disconnected=lambda s: downs.append(s.generation),
    ) as session:
        await session.wait_ready(2)
        ami.conns[0].silent = True  # TCP stays open; nothing answers any more
        started = time.monotonic()
        await eventually(lambda: not session.ready.is_set(), within=2)
        detected_after = time.monotonic() - started
        assert detected_after < 1.0  # ping_interval 0.2 + ping_timeout 0.3, plus slack
        await session.wait_ready(2)
        assert session.generation == 2
        assert len(ami.conns) == 2
        assert ups == [1, 2] and downs == [1]
        assert gauge("half-open") == 1
        reconnects = metrics.REGISTRY.get_sample_value(
            "hotline_ami_reconnects_total", {"node": "half-open", "cause": "watchdog"}
        )
        assert reconnects == 1


async def test_late_pong_on_a_busy_but_talking_link_is_not_a_disconnect(ami):
    async with make_session(ami, "busy") as session:
        await session.wait_ready(2)
        ami.conns[0].ignore_ping = True
        for i in range(40):  # events keep flowing for 1 s, ~5 watchdog periods
            ami.broadcast({"Event": "Newexten", "Seq": str(i)})
            await asyncio.sleep(0.025)
        assert session.generation == 1 and session.ready.is_set()
        assert len(ami.actions("Ping")) >= 2  # the watchdog asked, got no Pong, forgave
        for _ in range(40):  # silence now: this time the link is declared dead
            if session.generation == 2:
                break
            await asyncio.sleep(0.05)
        assert session.generation == 2


async def test_pending_action_fails_on_disconnect_and_is_never_resent(ami):
    ami.responders["redirect"] = lambda conn, action: None  # swallowed: outcome unknown
    async with make_session(ami, "no-resend") as session:
        await session.wait_ready(2)
        pending = asyncio.create_task(
            session.send_action({"Action": "Redirect", "Channel": "PJSIP/a-1"}, reply_timeout=5)
        )
        await eventually(lambda: len(ami.actions("Redirect")) == 1)
        ami.conns[0].close()
        with pytest.raises(AmiDisconnected) as info:
            await pending
        assert info.value.sent is True
        await session.wait_ready(2)
        assert session.generation == 2
        # FullyBooted is what makes panoramisk re-send; make sure nothing follows it here.
        ami.broadcast({"Event": "FullyBooted", "Status": "Fully Booted"})
        await session.ping()
        await asyncio.sleep(0.1)
        assert [conn for conn, _ in ami.actions("Redirect")] == [0]


async def test_close_while_reconnecting_returns_promptly():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    session = AmiSession("nobody-home", "127.0.0.1", port, "u", "p",
                         reconnect_initial=0.05, reconnect_max=0.1)
    await session.start()
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await session.close()
    assert time.monotonic() - started < 0.5
    assert not session.ready.is_set() and gauge("nobody-home") == 0


def test_for_node_points_at_the_lab_node():
    session = AmiSession.for_node(NODE_110, "hotline", SECRET)
    assert (session.node_name, session.host, session.port) == ("node110", "127.0.0.1", 15039)


async def test_nodes_can_share_one_queue_and_a_failing_callback_is_contained(ami):
    shared: asyncio.Queue = asyncio.Queue(10)

    def broken_recorder(event) -> None:
        raise RuntimeError("disk full")

    first = make_session(ami, "shared-a", events=["Hangup"], event_queue=shared,
                         on_event=broken_recorder)
    second = make_session(ami, "shared-b", events=["Hangup"], event_queue=shared)
    async with first, second:
        await first.wait_ready(2)
        await second.wait_ready(2)
        for index, conn in enumerate(ami.conns):
            conn.send({"Event": "Hangup", "Uniqueid": str(index)})
        events = [await asyncio.wait_for(shared.get(), 1) for _ in range(2)]
        assert sorted(e.manager.node_name for e in events) == ["shared-a", "shared-b"]
        assert sorted(e["Uniqueid"] for e in events) == ["0", "1"]
        assert first.ready.is_set()  # the recorder's exception did not hurt the link


async def test_actions_fail_fast_while_disconnected(ami):
    session = make_session(ami, "fail-fast")
    with pytest.raises(AmiDisconnected, match="not connected"):
        await session.send_action({"Action": "Ping"})
    with pytest.raises(AmiDisconnected, match="not connected"):
        session.submit({"Action": "Ping"})  # said at once: nothing was written


async def test_submitted_actions_are_written_at_once_and_replied_in_order(ami):
    # A pipelined Setvar + BlindTransfer: both leave in the caller's loop turn,
    # before either reply is awaited, and each reply finds its own action.
    ami.responders["setvar"] = lambda c, a: c.reply(a, Message="Variable Set")
    async with make_session(ami, "submit") as session:
        await session.wait_ready(2)
        first = session.submit({"Action": "Setvar", "Variable": "A", "Value": "1"})
        second = session.submit({"Action": "Ping"})
        await eventually(lambda: len(ami.actions("setvar")) + len(ami.actions("ping")) >= 2)
        order = [a["Action"] for _, a in ami.received if a["Action"] in ("Setvar", "Ping")]
        assert order[-2:] == ["Setvar", "Ping"]
        assert (await second)["Response"] == "Success"
        assert (await first)["Message"] == "Variable Set"


# --- events ---------------------------------------------------------------------
async def test_server_filter_and_local_allow_list(ami):
    async with make_session(ami, "filter", events=["Newchannel", "Hangup"]) as session:
        await session.wait_ready(2)
        criteria = sorted(a["MatchCriteria"] for _, a in ami.actions("Filter"))
        assert criteria == ["action(include),name(Hangup)", "action(include),name(Newchannel)"]
        assert session.server_filter_active
        for name in ("Newchannel", "VarSet", "Hangup"):
            ami.broadcast({"Event": name, "Uniqueid": "1.1"})
        await eventually(lambda: session.event_queue.qsize() == 2)
        names = [session.event_queue.get_nowait()["Event"] for _ in range(2)]
        assert names == ["Newchannel", "Hangup"]
        filtered = metrics.REGISTRY.get_sample_value(
            "hotline_events_filtered_total", {"node": "filter"}
        )
        assert filtered == 2  # VarSet and the FullyBooted that follows login


async def test_refused_server_filter_still_filters_locally(ami):
    ami.refuse_filter = True
    async with make_session(ami, "filter-refused", events=["Hangup"]) as session:
        await session.wait_ready(2)
        assert not session.server_filter_active
        ami.broadcast({"Event": "Newchannel"})
        ami.broadcast({"Event": "Hangup", "Uniqueid": "9.9"})
        before = time.time()
        event = await asyncio.wait_for(session.event_queue.get(), 1)
        assert event["Uniqueid"] == "9.9"
        assert event.manager is session
        # Stamped when its bytes arrived (the monitor's `rx`), before the queue.
        assert before - 1 < event.received_at <= time.time()
        assert session.event_queue.empty()


async def test_full_event_queue_drops_counts_and_flags_resync(ami):
    async with make_session(ami, "overflow", queue_size=2) as session:
        await session.wait_ready(2)
        first = await asyncio.wait_for(session.event_queue.get(), 1)
        assert first["Event"] == "FullyBooted"  # sent after login, not filtered here
        for i in range(5):
            ami.broadcast({"Event": "Newexten", "Seq": str(i)})
        await eventually(lambda: session.dropped_events == 3)
        assert [session.event_queue.get_nowait()["Seq"] for _ in range(2)] == ["0", "1"]
        assert session.needs_resync
        dropped = metrics.REGISTRY.get_sample_value(
            "hotline_event_queue_dropped_total", {"node": "overflow"}
        )
        assert dropped == 3


async def test_utf8_split_across_reads_is_decoded_whole(ami):
    async with make_session(ami, "utf8", events=["VarSet"]) as session:
        await session.wait_ready(2)
        payload = encode({"Event": "VarSet", "Variable": "SUMMARY", "Value": "市民反映噪音扰民"})
        cut = payload.index("噪".encode()) + 1  # in the middle of a 3-byte character
        writer = ami.conns[0].writer
        writer.write(payload[:cut])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(payload[cut:])
        event = await asyncio.wait_for(session.event_queue.get(), 1)
        assert event["Value"] == "市民反映噪音扰民"


# --- malformed input ------------------------------------------------------------
async def test_garbage_and_missing_response_give_clear_errors(ami):
    def no_response_header(conn: FakeConn, action: dict[str, str]) -> None:
        conn.writer.write(f"ActionID: {action['ActionID']}\r\nFoo: bar\r\n\r\n".encode())

    ami.responders["weird"] = no_response_header
    async with make_session(ami, "malformed", ping_interval=10) as session:
        await session.wait_ready(2)
        ami.conns[0].writer.write(b"this is not AMI\r\n\xff\xfe binary junk\r\n\r\n")
        with pytest.raises(AmiProtocolError, match="Weird: reply without a Response header"):
            await session.send_action({"Action": "Weird"})
        assert (await session.ping())["Ping"] == "Pong"
        assert session.generation == 1  # no reconnect needed
        malformed = metrics.REGISTRY.get_sample_value(
            "hotline_ami_malformed_messages_total", {"node": "malformed"}
        )
        assert malformed == 2


async def test_endless_unterminated_message_drops_the_link(ami):
    async with make_session(ami, "flood") as session:
        await session.wait_ready(2)
        ami.conns[0].writer.write(b"X" * ((1 << 20) + 1) + b"more")
        await eventually(lambda: session.generation == 2, within=3)
        assert session.ready.is_set()


# --- multi-response actions ------------------------------------------------------
def list_responder(item_event: str, count: int, complete: bool = True) -> Responder:
    def respond(conn: FakeConn, action: dict[str, str]) -> None:
        action_id = action["ActionID"]
        conn.reply(action, EventList="start", Message="Channels will follow")
        for i in range(count):
            conn.send({"Event": item_event, "ActionID": action_id, "Channel": f"PJSIP/a-{i}"})
        if complete:
            conn.send({"Event": f"{action['Action']}Complete", "ActionID": action_id,
                       "EventList": "Complete", "ListItems": str(count)})

    return respond


async def test_list_actions_return_items_and_complete_event(ami):
    ami.responders["coreshowchannels"] = list_responder("CoreShowChannel", 3)
    ami.responders["bridgelist"] = list_responder("BridgeListItem", 0)
    async with make_session(ami, "lists") as session:
        await session.wait_ready(2)
        channels = await session.core_show_channels()
        assert [c["Channel"] for c in channels] == ["PJSIP/a-0", "PJSIP/a-1", "PJSIP/a-2"]
        assert channels.complete is not None and channels.complete["ListItems"] == "3"
        bridges = await session.bridge_list()
        assert len(bridges) == 0 and bridges.complete is not None


async def test_list_action_error_first_reply_does_not_hang(ami):
    ami.responders["confbridgelistrooms"] = lambda c, a: c.send(
        {"Response": "Error", "ActionID": a["ActionID"], "Message": "No active conferences."}
    )
    ami.responders["queuestatus"] = lambda c, a: c.send(
        {"Response": "Error", "ActionID": a["ActionID"], "Message": "Permission denied"}
    )
    async with make_session(ami, "list-errors") as session:
        await session.wait_ready(2)
        rooms = await session.confbridge_list_rooms(reply_timeout=0.5)
        assert len(rooms) == 0 and rooms.response["Message"] == "No active conferences."
        with pytest.raises(AmiError, match="Permission denied"):
            await session.queue_status(reply_timeout=0.5)


async def test_list_action_without_complete_times_out(ami):
    ami.responders["queuestatus"] = list_responder("QueueParams", 1, complete=False)
    async with make_session(ami, "list-hang", ping_interval=10) as session:
        await session.wait_ready(2)
        with pytest.raises(AmiTimeout, match="QueueStatus"):
            await session.queue_status(reply_timeout=0.2)


# --- backoff --------------------------------------------------------------------
def test_backoff_grows_with_jitter_and_is_capped():
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 8.0, rng) for n in range(1, 9)]
    for n, delay in enumerate(delays, start=1):
        base = min(8.0, 0.5 * 2 ** (n - 1))
        assert base / 2 <= delay <= base
    assert max(delays) <= 8.0
    same_attempt = {round(backoff_delay(5, 0.5, 8.0, rng), 6) for _ in range(20)}
    assert len(same_attempt) > 1  # jittered, not lockstep

"""The FastAGI server over real loopback TCP, with a scripted fake Asterisk as client."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog
from prometheus_client import REGISTRY

from ivr.fastagi import FastAGIServer, Limits
from ivr.flows import FlowDeps, routes_for
from ivr.queue_stats import QueueSnapshot, StaticQueueStats
from ivr.testing import EOF, ScriptedPeer, agi_headers, header_block
from ivr.tickets import InMemoryTicketSink


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def deps() -> FlowDeps:
    return FlowDeps(
        platform="12345",
        queue="q12345",
        tickets=InMemoryTicketSink(),
        queue_stats=StaticQueueStats(QueueSnapshot(1, 20)),
    )


async def sleeper(channel) -> None:
    await asyncio.sleep(30)


async def crasher(channel) -> None:
    await channel.answer()
    raise RuntimeError("bug in a flow")


ROUTES = {**routes_for(deps()), "sleep": sleeper, "crash": crasher}


@pytest.fixture
async def server():
    srv = FastAGIServer(ROUTES, "127.0.0.1", 0, Limits(header_timeout_s=0.5))
    await srv.start()
    yield srv
    await srv.stop()


async def fake_asterisk(port: int, peer: ScriptedPeer, route: str = "ingress-12345") -> None:
    """Send headers, then answer each command line the way the scripted caller would."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header_block(agi_headers(route)))
    await writer.drain()
    try:
        while line := await asyncio.wait_for(reader.readline(), 5):
            reply = peer.respond(line.decode())
            if reply == EOF:
                break
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()


async def until_idle(srv: FastAGIServer, within: float = 2.0) -> float:
    start = time.monotonic()
    while srv.active_sessions:
        assert time.monotonic() - start < within, "sessions did not end"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def until_busy(srv: FastAGIServer) -> None:
    for _ in range(200):
        if srv.active_sessions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no session started")


async def test_normal_session_sets_destination(server):
    before = metric("hotline_fastagi_sessions_total", route="ingress-12345", outcome="ok")
    peer = ScriptedPeer(["2"])
    await fake_asterisk(server.port, peer)
    await until_idle(server)
    assert peer.final_vars["HOTLINE_DEST"] == "queue"
    assert peer.final_vars["__TICKET_CATEGORY"] == "ivr.complaint"
    assert peer.commands[0] == "ANSWER"
    after = metric("hotline_fastagi_sessions_total", route="ingress-12345", outcome="ok")
    assert after == before + 1


async def test_logs_are_bound_to_the_call(server):
    cap = structlog.testing.LogCapture()
    structlog.reset_defaults()  # another test may have left a level filter configured
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, cap])
    try:
        await fake_asterisk(server.port, ScriptedPeer(["1"]))
        await until_idle(server)
    finally:
        structlog.reset_defaults()
    start = next(e for e in cap.entries if e["event"] == "fastagi.session_start")
    assert start["agi_uniqueid"] == "1700000000.1"
    assert start["agi_channel"] == "PJSIP/citizen-00000001"
    assert start["route"] == "ingress-12345"
    outcome = next(e for e in cap.entries if e["event"] == "ivr.outcome")
    assert outcome["agi_uniqueid"] == "1700000000.1"
    assert outcome["ticket_id"].startswith("T12345-")
    assert outcome["platform"] == "12345"


async def test_early_close_before_headers_does_not_spin(server):
    before = metric("hotline_fastagi_errors_total", kind="early_close")
    cpu0 = time.process_time()
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_request: agi://127.0.0.1/ingress-12345\n")  # no blank line
        await writer.drain()
        writer.close()
    took = await until_idle(server, within=1.0)
    await asyncio.sleep(0.3)  # a spinning handler would burn this whole interval
    cpu = time.process_time() - cpu0
    assert took < 1.0
    assert cpu < 0.5, f"{cpu:.2f}s CPU for 20 early closes"
    assert metric("hotline_fastagi_errors_total", kind="early_close") == before + 20


async def test_connect_and_close_silently(server):
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()
    await until_idle(server, within=1.0)


async def read_until_closed(reader: asyncio.StreamReader, within: float = 2.0) -> bytes:
    """What the server sent before closing; a reset (unread input discarded) counts as closed."""
    try:
        return await asyncio.wait_for(reader.read(), within)
    except ConnectionResetError:
        return b""


async def test_malformed_headers_are_refused(server):
    before = metric("hotline_fastagi_errors_total", kind="malformed_headers")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert await read_until_closed(reader) == b""  # closed, no AGI command sent
    writer.close()
    await until_idle(server)
    assert metric("hotline_fastagi_errors_total", kind="malformed_headers") == before + 1


async def test_huge_line_is_cut_off(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"agi_request: " + b"a" * 1_000_000)
        await writer.drain()
    except ConnectionError:
        pass  # the server may close while we are still writing: that is the point
    assert await read_until_closed(reader) == b""
    writer.close()
    await until_idle(server)


async def test_too_many_header_lines(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"".join(f"agi_x{i}: {i}\n".encode() for i in range(1000)))
        await writer.drain()
    except ConnectionError:
        pass
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_silent_client_times_out(server):
    before = metric("hotline_fastagi_errors_total", kind="header_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    start = time.monotonic()
    assert await read_until_closed(reader) == b""
    assert 0.4 < time.monotonic() - start < 1.5
    writer.close()
    assert metric("hotline_fastagi_errors_total", kind="header_timeout") == before + 1


@pytest.mark.parametrize("style", ["line", "eof", "511", "-1"])
async def test_hangup_mid_flow_ends_session(server, style):
    before = metric("hotline_fastagi_sessions_total", route="ingress-12345", outcome="hangup")
    peer = ScriptedPeer(["1", f"hangup:{style}"])
    await fake_asterisk(server.port, peer)
    await until_idle(server)
    assert "HOTLINE_DEST" not in peer.final_vars
    after = metric("hotline_fastagi_sessions_total", route="ingress-12345", outcome="hangup")
    assert after == before + 1


async def test_unknown_route_falls_back_to_queue(server):
    peer = ScriptedPeer([])
    await fake_asterisk(server.port, peer, route="no-such-route")
    assert peer.final_vars == {"HOTLINE_DEST": "queue"}


async def test_flow_crash_falls_back_to_queue(server):
    before = metric("hotline_fastagi_errors_total", kind="flow")
    peer = ScriptedPeer([])
    await fake_asterisk(server.port, peer, route="crash")
    assert peer.final_vars == {"HOTLINE_DEST": "queue"}
    assert metric("hotline_fastagi_errors_total", kind="flow") == before + 1


async def test_session_duration_is_bounded():
    srv = FastAGIServer(ROUTES, "127.0.0.1", 0, Limits(session_timeout_s=0.3))
    await srv.start()
    try:
        peer = ScriptedPeer([])
        start = time.monotonic()
        await fake_asterisk(srv.port, peer, route="sleep")
        assert time.monotonic() - start < 2
        assert peer.final_vars == {"HOTLINE_DEST": "queue"}
    finally:
        await srv.stop()


async def test_many_concurrent_sessions(server):
    peers = [ScriptedPeer([str(1 + i % 5)]) for i in range(60)]
    await asyncio.gather(*(fake_asterisk(server.port, p) for p in peers))
    await until_idle(server)
    for peer in peers:
        assert peer.final_vars["HOTLINE_DEST"] == "queue"
        assert peer.final_vars["__TICKET_CATEGORY"].startswith("ivr.")
    ids = {p.final_vars["__TICKET_ID"] for p in peers}
    assert len(ids) == 60  # one ticket per call


async def test_stop_cancels_sessions_in_progress():
    srv = FastAGIServer(ROUTES, "127.0.0.1", 0)
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(header_block(agi_headers("sleep")))
    await writer.drain()
    await until_busy(srv)
    start = time.monotonic()
    await srv.stop()
    assert time.monotonic() - start < 2
    assert srv.active_sessions == 0
    assert await read_until_closed(reader) == b""
    writer.close()


async def test_session_limit_refuses_extra_callers():
    srv = FastAGIServer(ROUTES, "127.0.0.1", 0, Limits(max_sessions=1))
    await srv.start()
    try:
        _, w1 = await asyncio.open_connection("127.0.0.1", srv.port)
        w1.write(header_block(agi_headers("sleep")))
        await w1.drain()
        await until_busy(srv)
        r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await read_until_closed(r2) == b""  # refused: the dialplan queues the caller
        w1.close()
        w2.close()
    finally:
        await srv.stop()

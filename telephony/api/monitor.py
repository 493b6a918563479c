"""The supervisor's read API and live feed over HTTP: calls, queues, agents, monitor, wallboard.

Thin: every view comes from telephony.monitor (the hub and its builder); here
are only authorisation, query parsing and the two transports of the feed
(WebSocket, Server-Sent Events). docs/monitor.md has the schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from telephony.api.tokens import PRINCIPAL
from telephony.control import validation
from telephony.control.authz import Principal
from telephony.control.errors import BadInput, Forbidden, NotFound
from telephony.monitor.feed import Filter
from telephony.monitor.hub import MonitorHub

API = "/api/v1"
MONITOR_PATH = f"{API}/monitor"
WALLBOARD_PREFIX = "/wallboard"
WALLBOARD_DIR = Path(__file__).resolve().parents[1] / "monitor" / "wallboard"
HUB = web.AppKey("monitor_hub", MonitorHub)
FILTERS = ("platform", "queue", "agent", "ticket")
HEARTBEAT_S = 20.0


def _hub(request: web.Request) -> MonitorHub:
    return request.app[HUB]


def _filter(request: web.Request, who: Principal) -> Filter:
    """The query's filters, forced to the agent's own id for an agent token."""
    if who.role == "supervisor" and who.platform != _hub(request).builder.platform:
        raise Forbidden("a supervisor sees its own platform", code="other_platform")
    values: dict[str, str] = {}
    for name in FILTERS:
        raw = request.query.get(name)
        if raw:
            values[name] = validation.token(raw, name)
    if who.role == "agent":
        if values.get("agent", who.subject) != who.subject:
            raise Forbidden("an agent token sees only its own calls", code="not_your_phone")
        values["agent"] = who.subject
    return Filter(**values)


def _since(request: web.Request) -> int | None:
    # An EventSource reconnecting by itself keeps its URL (with the first `since`) and
    # sends the last id it saw: the header is the newer of the two.
    raw = request.headers.get("Last-Event-ID") or request.query.get("since")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadInput("since must be a message seq (a non-negative integer)",
                       code="invalid_since")
    return int(raw)


def _envelope(hub: MonitorHub, **body: Any) -> web.Response:
    return web.json_response({"platform": hub.builder.platform, "now": hub.clock(),
                              "seq": hub.log.seq, **body})


async def list_calls(request: web.Request, who: Principal) -> web.Response:
    hub = _hub(request)
    return _envelope(hub, calls=_filter(request, who).calls(hub.builder.calls()))


async def get_call(request: web.Request, who: Principal) -> web.Response:
    hub = _hub(request)
    call_id = validation.client_key(request.match_info["call_id"], "call_id")
    call = hub.builder.tracker.calls.get(call_id)
    if call is None:
        raise NotFound(f"no live call {call_id}", code="call_not_found")
    view = hub.builder.view(call)
    if who.role == "agent" and who.subject not in view["agents"]:
        raise Forbidden("not a party to this call", code="not_your_call")
    return _envelope(hub, call=view)


async def list_queues(request: web.Request, who: Principal) -> web.Response:
    hub = _hub(request)
    flt = _filter(request, who)
    queues = [q for q in hub.builder.queue_views(hub.clock())
              if flt.matches({"type": "queue", "queue": q})]
    return _envelope(hub, queues=queues)


async def list_agents(request: web.Request, who: Principal) -> web.Response:
    hub = _hub(request)
    flt = _filter(request, who)
    agents = [a for a in hub.builder.agents() if flt.matches({"type": "agent", "agent": a})]
    return _envelope(hub, agents=agents)


async def monitor_feed(request: web.Request, who: Principal) -> web.StreamResponse:
    flt, since = _filter(request, who), _since(request)
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _websocket(request, flt, since)
    if "text/event-stream" in request.headers.get("Accept", ""):
        return await _event_stream(request, flt, since)
    raise BadInput("the monitor is a WebSocket, or SSE with Accept: text/event-stream",
                   code="not_a_stream")


def _bound_send_buffer(request: web.Request, size: int) -> None:
    """Cap the connection's buffers (the transport's, then the kernel's), so a client that
    stops reading stalls its sender, and is skipped ahead and then disconnected, once
    about `size` bytes wait for it: a slow client costs that much memory, not more."""
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=size)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


async def _websocket(request: web.Request, flt: Filter, since: int | None) -> web.StreamResponse:
    hub = _hub(request)
    # No per-message compression: it would deflate every message once per client.
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096, compress=False,
                               writer_limit=hub.limits.socket_buffer)
    _bound_send_buffer(request, hub.limits.socket_buffer)
    await ws.prepare(request)

    async def send(seq: int, text: str) -> None:
        await ws.send_str(text)

    async def close(code: int, why: str) -> None:
        await ws.close(code=code, message=why.encode()[:120])

    client = await hub.connect(flt, since, send, close)
    sender = asyncio.create_task(hub.run_client(client))
    try:
        async for msg in ws:  # nothing to read; this answers pings and sees the close
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


async def _event_stream(request: web.Request, flt: Filter,
                        since: int | None) -> web.StreamResponse:
    hub = _hub(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    _bound_send_buffer(request, hub.limits.socket_buffer)
    await resp.prepare(request)

    async def send(seq: int, text: str) -> None:
        kind = text[text.find('"type":"') + 8:].partition('"')[0]
        await resp.write(f"id: {seq}\nevent: {kind}\ndata: {text}\n\n".encode())

    async def close(code: int, why: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write(f"event: close\ndata: {code} {why}\n\n".encode())
        if request.transport is not None:
            request.transport.close()

    client = await hub.connect(flt, since, send, close)
    await hub.run_client(client)
    return resp


async def wallboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WALLBOARD_DIR / "index.html")


def _authorised(handler: Any) -> Any:
    """Pass the request's principal (set by the auth middleware) to the handler."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request, request[PRINCIPAL])
        return response

    wrapped.__name__ = handler.__name__
    return wrapped


def add_routes(app: web.Application, hub: MonitorHub) -> None:
    app[HUB] = hub
    r = app.router
    r.add_get(f"{API}/calls", _authorised(list_calls), allow_head=False)
    r.add_get(f"{API}/calls/{{call_id}}", _authorised(get_call), allow_head=False)
    r.add_get(f"{API}/queues", _authorised(list_queues), allow_head=False)
    r.add_get(f"{API}/agents", _authorised(list_agents), allow_head=False)
    r.add_get(MONITOR_PATH, _authorised(monitor_feed), allow_head=False)
    r.add_get(WALLBOARD_PREFIX, wallboard, allow_head=False)
    r.add_get(f"{WALLBOARD_PREFIX}/", wallboard, allow_head=False)
    r.add_static(f"{WALLBOARD_PREFIX}/static/", WALLBOARD_DIR, append_version=False)

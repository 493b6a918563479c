"""The aiohttp application: /api/v1 call control, key action URLs, health, metrics,
and (given their parts) the monitor and the archive's ticket search.

Operations answer 202 with the operation record: it is accepted and sent, and
its state advances from AMI events (poll GET .../{op_id}). Errors are
{"error": {"code", "message", "detail"}} with the status from ControlError.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from telephony.api import archive as archive_api
from telephony.api import monitor as monitor_api
from telephony.api.body import read_json
from telephony.api.tokens import PRINCIPAL, TokenTable
from telephony.control import keys, validation
from telephony.control.authz import Principal
from telephony.control.controller import Controller
from telephony.control.errors import ControlError, Forbidden, NotFound, Unprocessable
from telephony.control.operation import Operation
from telephony.lifecycle import collection_deferred
from telephony.metrics import HTTP_REQUEST_SECONDS
from telephony.metrics import REGISTRY as HOTLINE_REGISTRY

MAX_BODY_BYTES = 16 * 1024
API = "/api/v1"
CONTROLLER = web.AppKey("controller", Controller)
TOKENS = web.AppKey("tokens", TokenTable)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")
TRANSFER_KINDS = ("blind_transfer", "warm_transfer")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, **detail: Any) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if detail:
        body["detail"] = detail
    return web.json_response({"error": body}, status=status)


@web.middleware
async def collection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A key press or any other change is handled with no collector pause in it.

    Reads may wait for a collection; a request that acts (every POST and DELETE,
    and a desk phone's GET action URL) holds it off from here until its response
    is ready (telephony.lifecycle).
    """
    if request.method == "GET" and request.match_info.handler is not press_key:
        return await handler(request)
    with collection_deferred():
        return await handler(request)


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Server-side handling time per route (the route's pattern: bounded labels).

    The monitor feed is a stream that lasts as long as its client: not timed.
    """
    if request.path == monitor_api.MONITOR_PATH:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        route = request.match_info.route.resource
        HTTP_REQUEST_SECONDS.labels(
            route=route.canonical if route is not None else "unmatched",
            status=str(status)).observe(time.perf_counter() - started)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as exc:
        return web.json_response({"error": exc.to_dict()}, status=exc.status)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body_too_large", f"body exceeds {MAX_BODY_BYTES} bytes")
    except web.HTTPNotFound:
        return error_response(404, "no_route", "no such resource")
    except web.HTTPMethodNotAllowed as exc:
        return error_response(405, "method_not_allowed", "method not allowed",
                              allowed=sorted(exc.allowed_methods))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS or request.path.startswith(monitor_api.WALLBOARD_PREFIX):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    if token is None and (request.path.startswith(f"{API}/keys/")
                          or request.path == monitor_api.MONITOR_PATH):
        # Desk phones, and browsers' WebSocket and EventSource, cannot set headers.
        token = request.query.get("token")
    principal = request.app[TOKENS].lookup(token)
    if principal is None:
        return error_response(401, "unauthorized", "a valid token is required")
    request[PRINCIPAL] = principal
    return await handler(request)


def _who(request: web.Request) -> Principal:
    principal: Principal = request[PRINCIPAL]
    return principal


def _ctl(request: web.Request) -> Controller:
    return request.app[CONTROLLER]


def _accepted(op: Operation) -> web.Response:
    return web.json_response(op.to_dict(), status=202)


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    return validation.client_key(key) if key is not None else None


def _op_of_kind(request: web.Request, kinds: tuple[str, ...]) -> Operation:
    op = _ctl(request).get(_who(request), request.match_info["op_id"])
    if op.kind not in kinds:
        raise NotFound(f"{op.op_id} is not a {' or '.join(kinds)}", code="operation_not_found")
    return op


# --- transfers ---------------------------------------------------------------
async def create_transfer(request: web.Request) -> web.Response:
    body = await read_json(request, {"call_id": (str, True), "target": (str, True),
                                     "mode": (str, False), "leg_id": (str, False)})
    mode = body["mode"] or "blind"
    if mode not in ("blind", "attended"):
        raise Unprocessable("mode must be blind or attended", code="invalid_field", field="mode")
    run = _ctl(request).blind_transfer if mode == "blind" else _ctl(request).warm_transfer
    op = await run(_who(request), body["call_id"], body["target"], leg_id=body["leg_id"],
                   idempotency_key=_idempotency_key(request))
    return _accepted(op)


async def get_transfer(request: web.Request) -> web.Response:
    return web.json_response(_op_of_kind(request, TRANSFER_KINDS).to_dict())


def transfer_verb(verb: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        await read_json(request, {})
        op = _op_of_kind(request, ("warm_transfer",))
        return _accepted(await _ctl(request).operation_verb(_who(request), op.op_id, verb))
    return handler


# --- conferences ---------------------------------------------------------------
async def create_conference(request: web.Request) -> web.Response:
    body = await read_json(request, {"call_id": (str, True), "target": (str, False),
                                     "purpose": (str, False), "leg_id": (str, False)})
    purpose = body["purpose"] or "three_party"
    if purpose not in ("three_party", "pull_in"):
        raise Unprocessable("purpose must be three_party or pull_in", code="invalid_field",
                            field="purpose")
    op = await _ctl(request).conference(_who(request), body["call_id"], body["target"],
                                        purpose=purpose, leg_id=body["leg_id"],
                                        idempotency_key=_idempotency_key(request))
    return _accepted(op)


async def get_conference(request: web.Request) -> web.Response:
    return web.json_response(_op_of_kind(request, ("conference",)).to_dict())


async def add_participant(request: web.Request) -> web.Response:
    body = await read_json(request, {"target": (str, True)})
    op = _op_of_kind(request, ("conference",))
    return _accepted(await _ctl(request).add_participant(_who(request), op.op_id,
                                                         body["target"]))


async def drop_participant(request: web.Request) -> web.Response:
    op = _op_of_kind(request, ("conference",))
    pid = validation.client_key(request.match_info["participant_id"], "participant_id")
    return _accepted(await _ctl(request).operation_verb(_who(request), op.op_id, "drop",
                                                        participant_id=pid))


async def leave_conference(request: web.Request) -> web.Response:
    await read_json(request, {})
    op = _op_of_kind(request, ("conference",))
    return _accepted(await _ctl(request).operation_verb(_who(request), op.op_id, "leave"))


async def negotiate(request: web.Request) -> web.Response:
    body = await read_json(request, {"outcome": (str, False),
                                     "police_dispatch_first": (bool, False)})
    op = _op_of_kind(request, ("conference",))
    op = await _ctl(request).operation_verb(
        _who(request), op.op_id, "negotiate", outcome=body["outcome"],
        police_dispatch_first=body["police_dispatch_first"])
    return web.json_response(op.to_dict())


# --- supervisor, legs, operations --------------------------------------------
async def spy(request: web.Request) -> web.Response:
    body = await read_json(request, {"mode": (str, True), "leg_id": (str, False),
                                     "endpoint": (str, False)})
    op = await _ctl(request).spy(_who(request), request.match_info["call_id"], body["mode"],
                                 leg_id=body["leg_id"], endpoint=body["endpoint"],
                                 idempotency_key=_idempotency_key(request))
    return _accepted(op)


async def hangup_leg(request: web.Request) -> web.Response:
    await read_json(request, {})
    op = await _ctl(request).hangup_leg(_who(request), request.match_info["call_id"],
                                        request.match_info["leg_id"])
    return _accepted(op)


async def get_operation(request: web.Request) -> web.Response:
    return web.json_response(_ctl(request).get(_who(request), request.match_info["op_id"])
                             .to_dict())


# --- desk-phone action URLs ------------------------------------------------------
async def list_keys(request: web.Request) -> web.Response:
    return web.json_response([{"key": k.name, "dtmf": k.dtmf, "action": k.action,
                               "target": k.target, "label": k.label}
                              for k in keys.KEYS.values()])


async def press_key(request: web.Request) -> web.Response:
    who = _who(request)
    spec = keys.spec_for(request.match_info["key"])
    agent = request.query.get("agent") or (who.subject if who.role == "agent" else None)
    agent = validation.token(agent, "agent")
    if who.role == "agent" and agent != who.subject:
        raise Forbidden("an agent token may press keys only for itself",
                        code="not_your_phone")
    call_id = _ctl(request).directory.call_for_agent(agent)
    if call_id is None:
        raise NotFound("the agent is on no call", code="call_not_found")
    op = await keys.press(_ctl(request), who, spec.name, call_id)
    return _accepted(op)


# --- health ------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = _ctl(request).sender.ready
    return web.json_response({"ready": ready, "ami": "connected" if ready else "down"},
                             status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(controller: Controller, tokens: TokenTable, *,
               hub: monitor_api.MonitorHub | None = None,
               archive: archive_api.ArchiveApi | None = None,
               registry: CollectorRegistry | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes,
                          middlewares=[collection_middleware, timing_middleware,
                                       errors_middleware, auth_middleware])
    app[CONTROLLER] = controller
    app[TOKENS] = tokens
    app[REGISTRY_KEY] = registry if registry is not None else HOTLINE_REGISTRY
    r = app.router
    r.add_post(f"{API}/transfers", create_transfer)
    r.add_get(f"{API}/transfers/{{op_id}}", get_transfer, allow_head=False)
    for verb in ("complete", "cancel", "swap"):
        r.add_post(f"{API}/transfers/{{op_id}}/{verb}", transfer_verb(verb))
    r.add_post(f"{API}/conferences", create_conference)
    r.add_get(f"{API}/conferences/{{op_id}}", get_conference, allow_head=False)
    r.add_post(f"{API}/conferences/{{op_id}}/participants", add_participant)
    r.add_delete(f"{API}/conferences/{{op_id}}/participants/{{participant_id}}",
                 drop_participant)
    r.add_post(f"{API}/conferences/{{op_id}}/leave", leave_conference)
    r.add_post(f"{API}/conferences/{{op_id}}/negotiation", negotiate)
    r.add_post(f"{API}/calls/{{call_id}}/spy", spy)
    r.add_post(f"{API}/calls/{{call_id}}/legs/{{leg_id}}/hangup", hangup_leg)
    r.add_get(f"{API}/operations/{{op_id}}", get_operation, allow_head=False)
    r.add_get(f"{API}/keys", list_keys, allow_head=False)
    r.add_get(f"{API}/keys/{{key}}", press_key, allow_head=False)
    r.add_post(f"{API}/keys/{{key}}", press_key)
    r.add_get("/healthz", healthz, allow_head=False)
    r.add_get("/readyz", readyz, allow_head=False)
    r.add_get("/metrics", metrics, allow_head=False)
    if hub is not None:  # the supervisor's read API, feed and wallboard
        monitor_api.add_routes(app, hub)
    if archive is not None:  # ticket search, trace and export (supervisors, admin)
        archive_api.add_routes(app, archive)
    return app

"""The HTTP API through aiohttp's real test server (127.0.0.1), with fake AMI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from telephony.api.app import create_app
from telephony.api.tokens import TokenTable
from telephony.control.authz import Principal
from telephony.control.controller import Controller
from telephony.control.protocols import InMemoryOpStore
from telephony.control.targets import TargetPolicy
from telephony.control.testing import (
    AGENT,
    AGENT_ID,
    AGENT_UID,
    CALLER,
    CALLER_UID,
    FakeDirectory,
    FakeSender,
    blind_success_events,
    chan,
    ev,
    two_party_call,
)

AGENT_TOKEN = "agent-token-0123456789"
OTHER_TOKEN = "other-agent-token-0123"
SUP_TOKEN = "supervisor-token-01234"
ADMIN_TOKEN = "admin-token-0123456789"
H_AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}
H_OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
H_SUP = {"Authorization": f"Bearer {SUP_TOKEN}"}


class World:
    def __init__(self) -> None:
        self.directory = FakeDirectory()
        self.directory.put(two_party_call())
        self.sender = FakeSender()
        self.registry = CollectorRegistry()
        Counter("hotline_test_probe", "probe", registry=self.registry).inc()
        self.controller = Controller(platform="12345", directory=self.directory,
                                     sender=self.sender, store=InMemoryOpStore(),
                                     targets=TargetPolicy("12345"))
        self.tokens = TokenTable.from_config({"tokens": [
            {"token": AGENT_TOKEN, "role": "agent", "subject": AGENT_ID, "platform": "12345"},
            {"token": OTHER_TOKEN, "role": "agent", "subject": "agent12345-2",
             "platform": "12345"},
            {"token": SUP_TOKEN, "role": "supervisor", "subject": "sup", "platform": "12345",
             "endpoint": "sup12345-1"},
            {"token": ADMIN_TOKEN, "role": "admin", "subject": "root", "platform": "12345"},
        ]})
        self.client: TestClient


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    app = create_app(w.controller, w.tokens, registry=w.registry, max_body_bytes=4096)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        w.client = client
        yield w


async def error_of(resp: Any) -> tuple[int, str]:
    body = await resp.json()
    return resp.status, body["error"]["code"]


async def test_blind_transfer_then_read_it(world: World) -> None:
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT,
                                   json={"call_id": CALLER_UID, "target": "110"})
    assert resp.status == 202
    op = await resp.json()
    assert (op["kind"], op["state"], op["target"]) == ("blind_transfer", "requested", "110")
    assert world.sender.sent[-1] == {"Action": "BlindTransfer", "Channel": AGENT,
                                     "Context": "hotline-xfer", "Exten": "110"}
    for event in blind_success_events():
        world.controller.on_event(event)
    read = await world.client.get(f"/api/v1/transfers/{op['op_id']}", headers=H_AGENT)
    body = await read.json()
    assert read.status == 200 and body["outcome"] == "completed"
    assert [s["state"] for s in body["steps"]][-1] == "completed"
    generic = await world.client.get(f"/api/v1/operations/{op['op_id']}", headers=H_SUP)
    assert (await generic.json())["op_id"] == op["op_id"]
    wrong_kind = await world.client.get(f"/api/v1/conferences/{op['op_id']}", headers=H_AGENT)
    assert await error_of(wrong_kind) == (404, "operation_not_found")


async def test_idempotency_header(world: World) -> None:
    headers = {**H_AGENT, "Idempotency-Key": "press-42"}
    first = await (await world.client.post("/api/v1/transfers", headers=headers, json={
        "call_id": CALLER_UID, "target": "110"})).json()
    second = await (await world.client.post("/api/v1/transfers", headers=headers, json={
        "call_id": CALLER_UID, "target": "110"})).json()
    assert first["op_id"] == second["op_id"]
    assert world.sender.names() == ["BlindTransfer"]
    bad = await world.client.post("/api/v1/transfers", json={"call_id": CALLER_UID,
                                                               "target": "110"},
                                  headers={**H_AGENT, "Idempotency-Key": "a b"})
    assert await error_of(bad) == (400, "invalid_idempotency_key")


@pytest.mark.parametrize(("headers", "payload", "expected"), [
    ({}, {"call_id": CALLER_UID, "target": "110"}, (401, "unauthorized")),
    ({"Authorization": "Bearer nope"}, {"call_id": CALLER_UID, "target": "110"},
     (401, "unauthorized")),
    (H_OTHER, {"call_id": CALLER_UID, "target": "110"}, (403, "not_your_call")),
    (H_AGENT, {"call_id": "404.404", "target": "110"}, (404, "call_not_found")),
    (H_AGENT, {"call_id": CALLER_UID, "target": "911"}, (422, "invalid_target")),
    (H_AGENT, {"call_id": CALLER_UID, "target": "12345"}, (422, "target_is_self")),
    (H_AGENT, {"call_id": CALLER_UID}, (422, "missing_field")),
    (H_AGENT, {"call_id": CALLER_UID, "target": 110}, (422, "invalid_field")),
    (H_AGENT, {"call_id": CALLER_UID, "target": "110", "x": 1}, (422, "unknown_fields")),
    (H_AGENT, {"call_id": CALLER_UID, "target": "110", "mode": "sideways"},
     (422, "invalid_field")),
    # CR/LF and oversized values stop at the body check, whatever the field.
    (H_AGENT, {"call_id": CALLER_UID, "target": "110\r\nAction: Originate"},
     (422, "invalid_field")),
    (H_AGENT, {"call_id": CALLER_UID + "\r\nAction: Originate", "target": "110"},
     (422, "invalid_field")),
    (H_AGENT, {"call_id": "x" * 3000, "target": "110"}, (422, "invalid_field")),
    (H_AGENT, {"call_id": CALLER_UID, "target": "12" * 1500}, (422, "invalid_field")),
])
async def test_transfer_errors(world: World, headers: dict[str, str], payload: dict[str, Any],
                               expected: tuple[int, str]) -> None:
    resp = await world.client.post("/api/v1/transfers", headers=headers, json=payload)
    assert await error_of(resp) == expected
    assert world.sender.sent == []


async def test_malformed_and_oversized_bodies(world: World) -> None:
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT, data=b"{not json")
    assert await error_of(resp) == (400, "invalid_json")
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT, data=b"[1, 2]")
    assert await error_of(resp) == (400, "invalid_json")
    huge = b'{"call_id": "' + b"x" * 10240 + b'", "target": "110"}'
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT, data=huge)
    assert await error_of(resp) == (413, "body_too_large")
    assert world.sender.sent == []


async def test_not_bridged_is_409_and_node_down_is_503(world: World) -> None:
    world.directory.put(two_party_call(bridged=False))
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT,
                                   json={"call_id": CALLER_UID, "target": "110"})
    assert await error_of(resp) == (409, "not_bridged")
    world.sender.ready = False
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT,
                                   json={"call_id": CALLER_UID, "target": "110"})
    assert await error_of(resp) == (503, "node_unavailable")
    ready = await world.client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["ready"] is False


async def test_warm_transfer_verbs(world: World) -> None:
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT, json={
        "call_id": CALLER_UID, "target": "110", "mode": "attended"})
    op = await resp.json()
    url = f"/api/v1/transfers/{op['op_id']}"
    assert await error_of(await world.client.post(f"{url}/complete", headers=H_AGENT)) == (
        409, "wrong_state")
    world.controller.on_event(ev("DialBegin", **chan("Local/110@hotline-out-00000004;2",
                                                     "1764380000.5")))
    resp = await world.client.post(f"{url}/cancel", headers=H_AGENT)
    assert resp.status == 202 and (await resp.json())["state"] == "cancelling"
    assert world.sender.sent[-1] == {"Action": "CancelAtxfer", "Channel": AGENT}


async def test_conference_lifecycle(world: World) -> None:
    resp = await world.client.post("/api/v1/conferences", headers=H_AGENT,
                                   json={"call_id": CALLER_UID})
    assert resp.status == 202
    op = await resp.json()
    url = f"/api/v1/conferences/{op['op_id']}"
    for channel, uid in ((CALLER, CALLER_UID), (AGENT, AGENT_UID)):
        world.controller.on_event(ev("ConfbridgeJoin", Conference=op["conference"],
                                     **chan(channel, uid)))
    await world.controller.drain()
    assert world.sender.names() == ["Setvar", "Setvar", "Redirect", "Originate"]
    resp = await world.client.post(f"{url}/participants", headers=H_AGENT,
                                   json={"target": "120"})
    assert resp.status == 202
    await world.controller.drain()
    assert world.sender.sent[-1]["Channel"] == "Local/120@hotline-out/n"
    resp = await world.client.delete(f"{url}/participants/p2", headers=H_AGENT)
    assert await error_of(resp) == (409, "wrong_state")  # still dialing
    resp = await world.client.post(f"{url}/negotiation", headers=H_AGENT, json={
        "outcome": "agreed_110", "police_dispatch_first": True})
    body = await resp.json()
    assert resp.status == 200 and body["owner"] == "110" and body["police_dispatch_first"]
    resp = await world.client.post(f"{url}/negotiation", headers=H_AGENT, json={
        "outcome": "whatever"})
    assert await error_of(resp) == (400, "invalid_outcome")
    resp = await world.client.post(f"{url}/leave", headers=H_AGENT)
    assert resp.status == 202
    assert world.sender.sent[-1] == {"Action": "Hangup", "Channel": AGENT, "Cause": "16"}
    got = await (await world.client.get(url, headers=H_SUP)).json()
    assert [p["target"] for p in got["participants"]] == ["110", "120"]
    resp = await world.client.get(url, headers=H_OTHER)
    assert await error_of(resp) == (403, "not_your_call")


async def test_supervisor_spy_and_hangup(world: World) -> None:
    resp = await world.client.post(f"/api/v1/calls/{CALLER_UID}/spy", headers=H_AGENT,
                                   json={"mode": "listen"})
    assert await error_of(resp) == (403, "supervisor_only")
    resp = await world.client.post(f"/api/v1/calls/{CALLER_UID}/spy", headers=H_SUP,
                                   json={"mode": "barge"})
    assert resp.status == 202
    await world.controller.drain()
    assert world.sender.sent[-1]["Data"] == f"{AGENT},qBE"
    resp = await world.client.post(f"/api/v1/calls/{CALLER_UID}/legs/9.9/hangup",
                                   headers=H_SUP)
    assert await error_of(resp) == (404, "leg_not_found")
    resp = await world.client.post(f"/api/v1/calls/{CALLER_UID}/legs/{AGENT_UID}/hangup",
                                   headers=H_SUP)
    assert resp.status == 202 and (await resp.json())["kind"] == "hangup"


async def test_desk_phone_action_urls(world: World) -> None:
    resp = await world.client.get("/api/v1/keys/xfer110",
                                  params={"agent": AGENT_ID, "token": AGENT_TOKEN})
    assert resp.status == 202 and (await resp.json())["kind"] == "blind_transfer"
    # The same key again (a double press) is the same operation.
    again = await world.client.post("/api/v1/keys/xfer110",
                                    params={"agent": AGENT_ID, "token": AGENT_TOKEN})
    assert (await again.json())["op_id"] == (await resp.json())["op_id"]
    assert world.sender.names() == ["BlindTransfer"]
    resp = await world.client.get("/api/v1/keys/xfer110",
                                  params={"agent": "agent12345-2", "token": AGENT_TOKEN})
    assert await error_of(resp) == (403, "not_your_phone")
    resp = await world.client.get("/api/v1/keys/nope", params={"token": AGENT_TOKEN})
    assert await error_of(resp) == (404, "unknown_key")
    resp = await world.client.get("/api/v1/keys/xfer110", params={"agent": AGENT_ID})
    assert await error_of(resp) == (401, "unauthorized")
    resp = await world.client.get("/api/v1/keys/xfer110",
                                  params={"token": OTHER_TOKEN})
    assert await error_of(resp) == (404, "call_not_found")
    # Query tokens are only for action URLs.
    resp = await world.client.post("/api/v1/transfers", params={"token": AGENT_TOKEN},
                                   json={"call_id": CALLER_UID, "target": "110"})
    assert await error_of(resp) == (401, "unauthorized")
    table = await (await world.client.get("/api/v1/keys", headers=H_AGENT)).json()
    assert {k["key"]: k["dtmf"] for k in table}["leave3way"] == "*0"


async def test_health_readiness_metrics(world: World) -> None:
    assert (await world.client.get("/healthz")).status == 200
    ready = await world.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["ami"] == "connected"
    metrics = await world.client.get("/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "hotline_test_probe_total 1.0" in await metrics.text()


async def test_the_default_metrics_page_is_the_hotline_registry_with_request_timings() -> None:
    w = World()
    app = create_app(w.controller, w.tokens)  # as the service builds it
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await client.get("/api/v1/keys", headers=H_AGENT)
        text = await (await client.get("/metrics")).text()
    assert "# TYPE hotline_ami_connected gauge" in text
    assert 'hotline_http_request_seconds_count{route="/api/v1/keys",status="200"}' in text


async def test_unknown_route_is_json_404(world: World) -> None:
    resp = await world.client.get("/api/v1/nothing", headers=H_AGENT)
    assert await error_of(resp) == (404, "no_route")


def test_short_tokens_refused() -> None:
    with pytest.raises(ValueError):
        TokenTable.from_config({"tokens": [{"token": "short", "role": "admin",
                                            "subject": "x", "platform": "12345"}]})
    table = TokenTable({"a" * 16: Principal("admin", "root", "12345")})
    assert table.lookup("a" * 16) is not None and table.lookup("b" * 16) is None


async def test_concurrent_http_presses_make_one_transfer(world: World) -> None:
    import asyncio

    payload = {"call_id": CALLER_UID, "target": "110"}
    responses = await asyncio.gather(*(
        world.client.post("/api/v1/transfers", headers=H_AGENT, json=payload)
        for _ in range(5)))
    ids = {(await r.json())["op_id"] for r in responses}
    assert [r.status for r in responses] == [202] * 5
    assert len(ids) == 1 and world.sender.names() == ["BlindTransfer"]


async def test_interrupted_action_reported_not_resent(world: World) -> None:
    world.sender.fail_with = ConnectionError("AMI lost")
    resp = await world.client.post("/api/v1/transfers", headers=H_AGENT,
                                   json={"call_id": CALLER_UID, "target": "110"})
    body = await resp.json()
    assert resp.status == 202 and body["interrupted"] is True and body["state"] == "requested"
    world.sender.fail_with = None
    again = await world.client.post("/api/v1/transfers", headers=H_AGENT,
                                    json={"call_id": CALLER_UID, "target": "110"})
    assert (await again.json())["op_id"] == body["op_id"]
    # The first press tried the transfer; the retry sent nothing.
    assert world.sender.names() == ["BlindTransfer"]


async def test_a_request_that_acts_runs_with_no_collector_pause_and_a_read_may_have_one(
        world: World) -> None:
    import gc

    seen: list[tuple[str, bool]] = []
    original = world.sender.submit

    def watching_submit(action: Any) -> Any:  # the moment an action is written
        seen.append((str(action["Action"]), gc.isenabled()))
        return original(action)

    world.sender.submit = watching_submit  # type: ignore[method-assign]
    resp = await world.client.get("/api/v1/keys/xfer110",
                                  params={"agent": AGENT_ID, "token": AGENT_TOKEN})
    assert resp.status == 202
    assert seen == [("BlindTransfer", False)]
    assert gc.isenabled()

    op_id = (await resp.json())["op_id"]
    in_read: list[bool] = []
    original_get = world.controller.get

    def watching_get(*args: Any, **kwargs: Any) -> Any:
        in_read.append(gc.isenabled())
        return original_get(*args, **kwargs)

    world.controller.get = watching_get  # type: ignore[method-assign]
    read = await world.client.get(f"/api/v1/operations/{op_id}", headers=H_AGENT)
    assert read.status == 200 and in_read == [True]  # a read holds nothing off

"""Peer authentication of the linkage API (telephony.linkage.auth): pure checks,
the nonce store in memory, the aiohttp middleware and mTLS, all on loopback."""

from __future__ import annotations

import io
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from redis.exceptions import ConnectionError as RedisConnectionError
from yarl import URL

from telephony.linkage import auth
from telephony.linkage.auth import (
    HEADER_NONCE,
    HEADER_PEER,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    LINKAGE_PEER,
    AuthError,
    MemoryNonceStore,
    NonceKeys,
    Peer,
    PeerTable,
    RedisNonceStore,
    ReplayCheckUnavailable,
    Verifier,
    canonical_target,
    check_signature,
    client_ssl_context,
    linkage_auth_middleware,
    server_ssl_context,
    sign,
)
from telephony.logging import configure_logging

NOW = 1_700_000_000.0
SECRET_110 = b"s" * 32 + b"-110"
SECRET_12345 = b"t" * 40
PEERS = PeerTable([Peer("110", SECRET_110), Peer("12345", SECRET_12345)])
PATH = "/linkage/v1/orders?ticket=T-1&b=2"
BODY = b'{"ticket_id": "T-1", "note": "\xe5\x99\xaa\xe5\xa3\xb0"}'
NONCE = "AAAAAAAAAAAAAAAAAAAAAA"  # 16 zero bytes, base64url
OTHER_NONCE = "AQEBAQEBAQEBAQEBAQEBAQ"


def signed(peer: str = "110", secret: bytes = SECRET_110, method: str = "POST",
           path: str = PATH, body: bytes = BODY, now: float = NOW,
           nonce: str | None = NONCE) -> dict[str, str]:
    return sign(peer, secret, method, path, body, now, nonce=nonce)


def code_of(headers: Mapping[str, str], method: str = "POST", path: str = PATH,
            body: bytes = BODY, now: float = NOW) -> str:
    with pytest.raises(AuthError) as caught:
        check_signature(PEERS, headers, method, path, body, now)
    assert caught.value.status == 401
    return caught.value.code


# --- peers ----------------------------------------------------------------------------
def test_peer_table_from_config():
    table = PeerTable.from_config({"peers": [
        {"id": "110", "secret": "x" * 32, "sources": "127.0.0.1"},
        {"id": "12345", "secret": b"y" * 32, "sources": ["10.0.0.0/24", "::1"]},
        {"id": "ops", "secret": "z" * 48},
    ]})
    assert len(table) == 3
    p110, p12345, ops = table.get("110"), table.get("12345"), table.get("ops")
    assert p110 is not None and p12345 is not None and ops is not None
    assert p110.secret == b"x" * 32
    assert p110.allows("127.0.0.1") and not p110.allows("127.0.0.2")
    assert p12345.allows("10.0.0.77") and p12345.allows("::1") and not p12345.allows("10.0.1.1")
    assert not p12345.allows(None) and not p12345.allows("not-an-address")
    assert ops.allows(None) and ops.allows("192.0.2.1")
    assert table.get("119") is None
    assert "x" * 32 not in repr(p110)  # the secret never shows in a repr


@pytest.mark.parametrize(("entry", "message"), [
    ({"id": "110", "secret": "x" * 31}, "shorter than 32 bytes"),
    ({"id": "110", "secret": "密" * 10}, "shorter than 32 bytes"),  # 30 bytes of UTF-8
    ({"id": "a:b", "secret": "x" * 32}, "not allowed"),
    ({"id": "110\n", "secret": "x" * 32}, "not allowed"),
    ({"id": "", "secret": "x" * 32}, "not allowed"),
])
def test_peer_table_refuses_short_secrets_and_bad_ids(entry, message):
    with pytest.raises(ValueError, match=message):
        PeerTable.from_config({"peers": [entry]})


def test_peer_table_refuses_a_peer_twice():
    with pytest.raises(ValueError, match="twice"):
        PeerTable([Peer("110", SECRET_110), Peer("110", SECRET_12345)])


# --- signing and the canonical form ---------------------------------------------------
def test_sign_gives_the_four_headers_and_a_fresh_nonce():
    headers = sign("110", SECRET_110, "POST", PATH, BODY, NOW + 0.9)
    assert set(headers) == {HEADER_PEER, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE}
    assert headers[HEADER_PEER] == "110"
    assert headers[HEADER_TIMESTAMP] == "1700000000"
    assert len(headers[HEADER_SIGNATURE]) == 43
    assert headers[HEADER_NONCE] != sign("110", SECRET_110, "POST", PATH, BODY, NOW)[HEADER_NONCE]
    auth.parse_claim(headers)  # its own shapes pass


def test_canonical_string_is_the_documented_one():
    canonical = auth.canonical_string("post", "/linkage/v1/x?b=2&a=1", "1700000000", NONCE, b"")
    assert canonical == ("POST\n/linkage/v1/x?a=1&b=2\n1700000000\n" + NONCE + "\n"
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@pytest.mark.parametrize(("target", "canonical"), [
    ("/a/b", "/a/b"),
    ("/a%7eb/%41", "/a~b/A"),  # unreserved escapes decoded
    ("/a%2fb", "/a%2Fb"),  # other escapes kept, in upper case: %2F is not a '/'
    ("/工单/1", "/%E5%B7%A5%E5%8D%95/1"),
    ("/a b", "/a%20b"),
    ("/x?b=2&a=1&a=0", "/x?a=0&a=1&b=2"),
    ("/x?a&a=", "/x?a&a="),  # a bare name and an empty value differ
    ("/x?q=%e5%b7%a5&p=~", "/x?p=~&q=%E5%B7%A5"),
    ("/x?a=1%26b%3D2", "/x?a=1%26b%3D2"),
    ("/x?", "/x?"),
    ("/100%", "/100%25"),
])
def test_canonical_target(target, canonical):
    assert canonical_target(target) == canonical
    assert canonical_target(canonical) == canonical


# --- verification ---------------------------------------------------------------------
def test_round_trip():
    peer, claim = check_signature(PEERS, signed(), "POST", PATH, BODY, NOW)
    assert peer.peer_id == "110" and claim.nonce == NONCE
    # Another spelling of the same target, and a lower-case header name, still verify.
    headers = {k.lower(): v for k, v in signed().items()}
    check_signature(PEERS, headers, "POST", "/linkage/v1/%6frders?b=2&ticket=T-1", BODY, NOW)
    # A multidict, as aiohttp hands over the request's headers.
    check_signature(PEERS, CIMultiDict(signed()), "POST", PATH, BODY, NOW)


@pytest.mark.parametrize(("change", "code"), [
    ({"method": "PUT"}, "bad_signature"),
    ({"path": "/linkage/v1/order?ticket=T-1&b=2"}, "bad_signature"),
    ({"path": "/linkage/v1/orders?ticket=T-2&b=2"}, "bad_signature"),
    ({"path": "/linkage/v1/orders?ticket=T-1&b=2&c=3"}, "bad_signature"),
    ({"path": "/linkage/v1/orders?ticket=T-1"}, "bad_signature"),
    ({"path": "/linkage/v1/orders?ticket=T-1&b=2".replace("b=2", "b=2&b=2")}, "bad_signature"),
    ({"body": BODY + b" "}, "bad_signature"),
    ({"body": b""}, "bad_signature"),
    ({HEADER_TIMESTAMP: str(int(NOW) + 1)}, "bad_signature"),
    ({HEADER_NONCE: OTHER_NONCE}, "bad_signature"),
    ({HEADER_PEER: "12345"}, "bad_signature"),  # another known peer, not its secret
    ({HEADER_PEER: "119"}, "unknown_peer"),
    ({HEADER_SIGNATURE: signed(secret=SECRET_12345)[HEADER_SIGNATURE]}, "bad_signature"),
])
def test_every_tampering_fails_with_its_code(change, code):
    headers = signed()
    request: dict[str, Any] = {"method": "POST", "path": PATH, "body": BODY}
    for key, value in change.items():
        (request if key in request else headers)[key] = value
    assert code_of(headers, **request) == code


def test_query_order_does_not_matter_but_values_do():
    check_signature(PEERS, signed(), "POST", "/linkage/v1/orders?b=2&ticket=T-1", BODY, NOW)
    assert code_of(signed(), path="/linkage/v1/orders?b=T-1&ticket=2") == "bad_signature"


def test_unknown_peer_costs_an_hmac_too(monkeypatch):
    compared: list[bytes] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert code_of(signed(peer="119")) == "unknown_peer"
    assert code_of(signed(secret=b"w" * 32)) == "bad_signature"
    assert len(compared) == 2 and all(len(c) == 43 for c in compared)


@pytest.mark.parametrize(("skew", "ok"), [
    (0, True), (-300, True), (300, True), (-301, False), (301, False),
    (-299.5, True), (-300.5, False), (300.9, True),  # the timestamp is whole seconds
    (-86_400, False), (86_400, False),
])
def test_time_window(skew, ok):
    # The request is signed at NOW + skew and checked at NOW.
    headers = signed(now=NOW + skew)
    if ok:
        check_signature(PEERS, headers, "POST", PATH, BODY, NOW)
    else:
        with pytest.raises(AuthError) as caught:
            check_signature(PEERS, headers, "POST", PATH, BODY, NOW)
        assert caught.value.code == "expired"
        assert caught.value.detail == {"server_time": int(NOW), "window": 300}


def test_window_is_configurable():
    headers = signed(now=NOW - 31)
    check_signature(PEERS, headers, "POST", PATH, BODY, NOW, window=31)
    with pytest.raises(AuthError, match="30 s"):
        check_signature(PEERS, headers, "POST", PATH, BODY, NOW, window=30)


def test_an_expired_forgery_is_a_bad_signature():
    # The signature is checked first: an unauthenticated caller learns nothing more.
    assert code_of(signed(secret=b"w" * 32, now=NOW - 1000)) == "bad_signature"


PADDED_NONCE = NONCE + "=="
NON_CANONICAL_SIG_TAIL = "B"  # the last of 43 characters carries 2 unused bits


@pytest.mark.parametrize(("header", "value"), [
    (HEADER_PEER, "110\r\nX-Admin: 1"),
    (HEADER_PEER, "110\n"),
    (HEADER_PEER, "1" * 65),
    (HEADER_PEER, "a:b"),
    (HEADER_PEER, ""),
    (HEADER_PEER, "一一〇"),
    (HEADER_TIMESTAMP, "1700000000\r\n"),
    (HEADER_TIMESTAMP, "-1"),
    (HEADER_TIMESTAMP, "+1700000000"),
    (HEADER_TIMESTAMP, " 1700000000"),
    (HEADER_TIMESTAMP, "1700000000.5"),
    (HEADER_TIMESTAMP, "1.7e9"),
    (HEADER_TIMESTAMP, "01700000000"),
    (HEADER_TIMESTAMP, "1" * 13),
    (HEADER_TIMESTAMP, "１７００００００００"),  # full-width digits
    (HEADER_NONCE, NONCE + "\n"),
    (HEADER_NONCE, "AAAAAAAAAAAAAAAAAAAAA"),  # 15 bytes
    (HEADER_NONCE, "A" * 87),  # more than 64 bytes
    (HEADER_NONCE, PADDED_NONCE),
    (HEADER_NONCE, "AAAAAAAAAAAAAAAAAAAAA+"),  # not base64url
    (HEADER_NONCE, "AAAAAAAAAAAAAAAAAAAAA/"),
    (HEADER_NONCE, "AAAAAAAAAAAAAAAAAAAAAB"),  # not the canonical spelling
    (HEADER_NONCE, "A" * 25),  # 25 characters: no whole number of bytes
    (HEADER_SIGNATURE, "!" * 43),
    (HEADER_SIGNATURE, "A" * 42),
    (HEADER_SIGNATURE, "A" * 44),
    (HEADER_SIGNATURE, "A" * 43 + "="),
    (HEADER_SIGNATURE, "A" * 42 + NON_CANONICAL_SIG_TAIL),
    (HEADER_SIGNATURE, "A" * 43 + "\r\n"),
    (HEADER_SIGNATURE, "A" * 20 + "\x00" + "A" * 22),
])
def test_malformed_header_values_are_refused(header, value):
    headers = signed()
    headers[header] = value
    with pytest.raises(AuthError) as caught:
        check_signature(PEERS, headers, "POST", PATH, BODY, NOW)
    assert caught.value.code == "malformed"
    assert caught.value.detail == {"header": header}


@pytest.mark.parametrize("header", [HEADER_PEER, HEADER_TIMESTAMP, HEADER_NONCE,
                                    HEADER_SIGNATURE])
def test_missing_or_repeated_headers_are_malformed(header):
    headers = signed()
    del headers[header]
    assert code_of(headers) == "malformed"
    twice = CIMultiDict(signed())
    twice.add(header, signed()[header])
    assert code_of(twice) == "malformed"


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "linkage/v1/orders"), ("POST", "/linkage/v1/orders\r\nHost: x"),
    ("POST", "/" + "a" * 2048), ("PO ST", PATH), ("", PATH), ("POST\n", PATH),
])
def test_bad_request_lines_are_malformed(method, path):
    headers = sign("110", SECRET_110, "POST", path, BODY, NOW, nonce=NONCE)
    assert code_of(headers, method=method, path=path) == "malformed"


def test_auth_error_has_the_project_error_shape():
    error = AuthError("expired", "too old", window=300)
    assert error.to_dict() == {"code": "expired", "message": "too old",
                               "detail": {"window": 300}}
    assert error.status == 401


# --- the property ---------------------------------------------------------------------
_SEGMENT = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="?#"),
                   max_size=12)
_PARAM = st.tuples(st.text(st.characters(blacklist_categories=("Cc", "Cs"),
                                         blacklist_characters="&=#"), max_size=6),
                   st.text(st.characters(blacklist_categories=("Cc", "Cs"),
                                         blacklist_characters="&#"), max_size=6))


@st.composite
def targets(draw: st.DrawFn) -> str:
    path = "/" + "/".join(draw(st.lists(_SEGMENT, max_size=5)))
    params = draw(st.lists(_PARAM, max_size=4))
    return path + ("?" + "&".join(f"{k}={v}" for k, v in params) if params else "")


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=512), target=targets(), data=st.data())
def test_property_round_trip_and_any_body_byte_change_fails(body, target, data):
    headers = sign("12345", SECRET_12345, "POST", target, body, NOW)
    peer, _ = check_signature(PEERS, headers, "POST", target, body, NOW)
    assert peer.peer_id == "12345"
    assert canonical_target(canonical_target(target)) == canonical_target(target)
    if body:
        index = data.draw(st.integers(0, len(body) - 1))
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]))
        changed = body[:index] + bytes([byte]) + body[index + 1:]
    else:
        changed = data.draw(st.binary(min_size=1, max_size=4))
    assert code_of(headers, path=target, body=changed) == "bad_signature"


# --- replay ---------------------------------------------------------------------------
async def test_replay_is_rejected():
    verifier = Verifier(PEERS, MemoryNonceStore())
    peer = await verifier.verify(signed(), "POST", PATH, BODY, NOW)
    assert peer.peer_id == "110"
    with pytest.raises(AuthError) as caught:
        await verifier.verify(signed(), "POST", PATH, BODY, NOW + 1)
    assert caught.value.code == "replayed"
    # Nonces are per peer: the other peer may use the same one.
    await verifier.verify(signed("12345", SECRET_12345), "POST", PATH, BODY, NOW)


@pytest.mark.parametrize("refusal", ["forged", "expired", "source"])
async def test_a_refused_request_does_not_burn_its_nonce(refusal):
    peers = PeerTable.from_config({"peers": [{"id": "110", "secret": SECRET_110,
                                              "sources": "127.0.0.1"}]})
    nonces = MemoryNonceStore()
    verifier = Verifier(peers, nonces)
    bad = {"forged": (signed(secret=b"w" * 32), NOW, "127.0.0.1"),
           "expired": (signed(now=NOW - 301), NOW, "127.0.0.1"),
           "source": (signed(), NOW, "192.0.2.9")}[refusal]
    with pytest.raises(AuthError):
        await verifier.verify(bad[0], "POST", PATH, BODY, bad[1], source=bad[2])
    assert len(nonces) == 0
    await verifier.verify(signed(), "POST", PATH, BODY, NOW, source="127.0.0.1")
    assert len(nonces) == 1


async def test_source_not_allowed_code():
    peers = PeerTable.from_config({"peers": [{"id": "110", "secret": SECRET_110,
                                              "sources": ["127.0.0.1/32"]}]})
    verifier = Verifier(peers, MemoryNonceStore())
    with pytest.raises(AuthError) as caught:
        await verifier.verify(signed(), "POST", PATH, BODY, NOW, source="127.0.0.2")
    assert caught.value.code == "source_not_allowed" and caught.value.status == 401


async def test_memory_nonces_expire_after_twice_the_window():
    nonces = MemoryNonceStore(window=10)
    assert nonces.ttl == 20
    assert await nonces.claim("110", NONCE, 100.0)
    assert not await nonces.claim("110", NONCE, 119.9)
    assert await nonces.claim("110", NONCE, 120.0)  # forgotten, then remembered again
    assert len(nonces) == 1


async def test_memory_nonces_are_bounded_and_fail_closed():
    nonces = MemoryNonceStore(window=10, max_entries=2)
    assert await nonces.claim("110", "n1", 100.0)
    assert await nonces.claim("110", "n2", 105.0)
    with pytest.raises(ReplayCheckUnavailable) as caught:
        await nonces.claim("110", "n3", 106.0)  # would have to forget n1 before its time
    assert caught.value.status == 503
    assert not await nonces.claim("110", "n1", 106.0)  # still remembered
    assert await nonces.claim("110", "n3", 120.0)  # n1 expired: room again
    assert len(nonces) == 2


def test_verifier_refuses_a_nonce_store_that_forgets_too_soon():
    with pytest.raises(ValueError, match="needs 600 s"):
        Verifier(PEERS, MemoryNonceStore(window=60))
    Verifier(PEERS, MemoryNonceStore(window=60), window=60)


class _DownRedis:
    async def set(self, *args: object, **kwargs: object) -> bool:
        raise RedisConnectionError("connection refused")


class _RecordingRedis:
    def __init__(self) -> None:
        self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    async def set(self, *args: object, **kwargs: object) -> bool | None:
        self.calls.append((args, kwargs))
        return True if len(self.calls) == 1 else None


async def test_redis_nonce_store_command_and_failure():
    recording = _RecordingRedis()
    store = RedisNonceStore(recording, window=300, keys=NonceKeys("hl"))
    assert await store.claim("110", NONCE, NOW)
    assert not await store.claim("110", NONCE, NOW)
    assert recording.calls[0] == ((f"hl:linkage:nonce:110:{NONCE}", "1"),
                                  {"nx": True, "ex": 600})
    with pytest.raises(ReplayCheckUnavailable):
        await RedisNonceStore(_DownRedis()).claim("110", NONCE, NOW)


# --- logging --------------------------------------------------------------------------
@pytest.fixture
def log_out() -> Iterator[io.StringIO]:
    out = io.StringIO()
    structlog.reset_defaults()
    configure_logging("DEBUG", stream=out)
    try:
        yield out
    finally:
        structlog.reset_defaults()  # leave other tests' logging alone


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_rejections_are_logged_without_signature_or_secret(log_out):
    verifier = Verifier(PEERS, MemoryNonceStore())
    forged = signed(secret=b"w" * 32)
    injected = {**signed(), HEADER_PEER: "110\r\nX-Evil: 1"}
    for headers in (forged, injected):
        with pytest.raises(AuthError):
            await verifier.verify(headers, "POST", PATH, BODY, NOW, source="127.0.0.1")
    first, second = _lines(log_out)
    assert first["event"] == "linkage_auth_rejected" and first["level"] == "warning"
    assert (first["code"], first["peer"], first["nonce"]) == ("bad_signature", "110", NONCE)
    assert (first["method"], first["path"], first["source"]) == ("POST", PATH, "127.0.0.1")
    assert (second["code"], second["peer"]) == ("malformed", None)
    text = log_out.getvalue()
    assert forged[HEADER_SIGNATURE] not in text and signed()[HEADER_SIGNATURE] not in text
    assert SECRET_110.decode() not in text and "X-Evil" not in text


# --- the middleware on loopback -------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


async def _orders(request: web.Request) -> web.Response:
    return web.json_response({"peer": request[LINKAGE_PEER].peer_id,
                              "body": await request.json(), "again": await request.text()})


async def _order(request: web.Request) -> web.Response:
    return web.json_response({"peer": request[LINKAGE_PEER].peer_id,
                              "ticket": request.match_info["ticket"], "raw": request.raw_path})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "peer": request.get(LINKAGE_PEER)})


def _app(clock: Clock, max_body_bytes: int = auth.MAX_BODY_BYTES) -> web.Application:
    app = web.Application(middlewares=[linkage_auth_middleware(
        PEERS, MemoryNonceStore(), clock=clock, max_body_bytes=max_body_bytes)])
    app.router.add_post("/linkage/v1/orders", _orders)
    app.router.add_get("/linkage/v1/orders/{ticket}", _order)
    app.router.add_get("/healthz", _health)
    return app


@pytest.fixture
async def client(log_out) -> AsyncIterator[tuple[TestClient, Clock]]:
    clock = Clock()
    async with TestClient(TestServer(_app(clock), host="127.0.0.1")) as c:
        yield c, clock


async def _post(c: TestClient, headers: dict[str, str], target: str = PATH,
                body: bytes = BODY) -> aiohttp.ClientResponse:
    return await c.post(URL(target, encoded=True), data=body,
                        headers={**headers, "Content-Type": "application/json"})


async def test_middleware_accepts_a_signed_request(client):
    c, _ = client
    response = await _post(c, signed())
    assert response.status == 200
    data = await response.json()
    assert data["peer"] == "110" and data["body"]["ticket_id"] == "T-1"
    assert data["again"] == BODY.decode()  # the handler reads the body the middleware read


async def test_middleware_signs_what_the_client_library_sends(client):
    c, clock = client
    target = "/linkage/v1/orders/工单-1?z=1&a=~"
    sent = URL(target)  # quoted by yarl on the way out
    headers = sign("110", SECRET_110, "GET", target, b"", clock())
    response = await c.get(sent, headers=headers)
    assert response.status == 200
    data = await response.json()
    assert data["peer"] == "110" and data["ticket"] == "工单-1"
    assert data["raw"] == "/linkage/v1/orders/%E5%B7%A5%E5%8D%95-1?z=1&a=~"


async def test_middleware_refuses_the_three_cases_of_the_issue(client, log_out):
    c, clock = client
    forged = await _post(c, signed(secret=b"w" * 32))
    expired = await _post(c, signed(now=clock() - 301, nonce=OTHER_NONCE))
    first = await _post(c, signed())
    replayed = await _post(c, signed())
    assert first.status == 200
    for response, code in ((forged, "bad_signature"), (expired, "expired"),
                           (replayed, "replayed")):
        assert response.status == 401
        error = (await response.json())["error"]
        assert error["code"] == code and error["message"]
    logged = [line for line in _lines(log_out) if line.get("event") == "linkage_auth_rejected"]
    assert [line["code"] for line in logged] == ["bad_signature", "expired", "replayed"]
    assert all(line["source"] == "127.0.0.1" and line["path"] == PATH for line in logged)


async def test_middleware_refuses_unsigned_and_tampered_requests(client):
    c, _ = client
    unsigned = await c.post("/linkage/v1/orders", data=BODY)
    assert unsigned.status == 401
    assert (await unsigned.json())["error"] == {
        "code": "malformed", "message": f"{HEADER_PEER} is missing",
        "detail": {"header": HEADER_PEER}}
    tampered = await _post(c, signed(), body=BODY.replace(b"T-1", b"T-2"))
    assert (await tampered.json())["error"]["code"] == "bad_signature"
    other_path = await _post(c, signed(path="/linkage/v1/orders?ticket=T-9&b=2"))
    assert (await other_path.json())["error"]["code"] == "bad_signature"
    # A route under the prefix that does not exist says 401, not 404, to a stranger.
    probe = await c.get("/linkage/v1/admin")
    assert probe.status == 401
    reordered = await _post(c, signed(), target="/linkage/v1/orders?b=2&ticket=T-1")
    assert reordered.status == 200


async def test_middleware_leaves_other_paths_alone(client):
    c, _ = client
    response = await c.get("/healthz")
    assert response.status == 200 and (await response.json())["peer"] is None


async def test_middleware_limits_the_body(log_out):
    clock = Clock()
    async with TestClient(TestServer(_app(clock, max_body_bytes=64),
                                     host="127.0.0.1")) as c:
        big = b'{"x": "' + b"a" * 100 + b'"}'
        response = await _post(c, signed(body=big), body=big)
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "body_too_large"
        small = b'{"x": 1}'
        assert (await _post(c, signed(body=small), body=small)).status == 200


async def test_middleware_fails_closed_when_the_nonce_store_is_down(log_out):
    clock = Clock()
    app = web.Application(middlewares=[linkage_auth_middleware(
        PEERS, RedisNonceStore(_DownRedis()), clock=clock)])
    app.router.add_post("/linkage/v1/orders", _orders)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        response = await _post(c, signed())
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "replay_check_unavailable"


# --- mTLS -----------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _leaf(name: str, ca: str, ext: str, cwd: Path) -> None:
    (cwd / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1",
             "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """Throw-away certificates made with the openssl CLI (`cryptography` is not in .venv;
    scripts/install-deps.sh installs openssl)."""
    assert shutil.which("openssl"), "the openssl CLI is missing: run scripts/install-deps.sh"
    _ca("ca", tmp_path)
    _ca("rogue-ca", tmp_path)
    _leaf("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", tmp_path)
    _leaf("peer110", "ca", "extendedKeyUsage=clientAuth\n", tmp_path)
    _leaf("intruder", "rogue-ca", "extendedKeyUsage=clientAuth\n", tmp_path)
    return tmp_path


def _context_files(pki: Path, name: str) -> tuple[str, str]:
    return str(pki / f"{name}.crt"), str(pki / f"{name}.key")


def test_ssl_contexts_are_built_as_documented(pki):
    server = server_ssl_context(*_context_files(pki, "server"), str(pki / "ca.crt"))
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    client = client_ssl_context(*_context_files(pki, "peer110"), str(pki / "ca.crt"))
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    with pytest.raises(FileNotFoundError):
        server_ssl_context(*_context_files(pki, "server"), str(pki / "missing.crt"))


async def test_mtls_requires_a_client_certificate_from_the_ca(pki, log_out):
    clock = Clock()
    server = TestServer(_app(clock), host="127.0.0.1")
    await server.start_server(ssl=server_ssl_context(*_context_files(pki, "server"),
                                                     str(pki / "ca.crt")))
    url = server.make_url("/linkage/v1/orders?b=2&ticket=T-1")
    trusted = client_ssl_context(*_context_files(pki, "peer110"), str(pki / "ca.crt"))
    intruder = client_ssl_context(*_context_files(pki, "intruder"), str(pki / "ca.crt"))
    no_cert = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=BODY, ssl=trusted, headers=signed()) as response:
                assert response.status == 200
                assert (await response.json())["peer"] == "110"
            for context in (no_cert, intruder):
                with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
                    async with session.post(url, data=BODY, ssl=context,
                                            headers=signed(nonce=OTHER_NONCE)) as response:
                        await response.read()
    finally:
        await server.close()


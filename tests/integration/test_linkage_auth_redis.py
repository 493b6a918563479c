"""The linkage nonce store (telephony.linkage.auth.RedisNonceStore) against a real,
private redis-server on loopback (the `redis_server` fixture), not the lab's Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis

from telephony.linkage import auth
from telephony.linkage.auth import NonceKeys, RedisNonceStore

pytestmark = pytest.mark.integration

NONCE = "AAAAAAAAAAAAAAAAAAAAAA"
SECRET = b"k" * 32


@pytest.fixture
async def client(redis_server):
    url, _ = redis_server
    conn = redis.Redis.from_url(url, decode_responses=True)
    yield conn
    await conn.aclose()


async def test_a_nonce_is_accepted_once_then_rejected_then_expires(client):
    store = RedisNonceStore(client, window=1)  # remembered for 2 s
    assert await store.claim("110", NONCE, time.time())
    assert not await store.claim("110", NONCE, time.time())
    key = "hl:linkage:nonce:110:" + NONCE
    assert key == NonceKeys().nonce("110", NONCE)
    assert await client.get(key) == "1"
    assert 0 < await client.pttl(key) <= 2000
    # Another peer's nonce of the same value is its own.
    assert await store.claim("12345", NONCE, time.time())
    deadline = time.monotonic() + 5
    while await client.exists(key):
        assert time.monotonic() < deadline, "the nonce key never expired"
        await asyncio.sleep(0.1)
    assert await store.claim("110", NONCE, time.time())


async def test_the_default_window_keeps_nonces_ten_minutes(client):
    store = RedisNonceStore(client, keys=NonceKeys("hltest"))
    assert await store.claim("110", NONCE, time.time())
    assert 590 < await client.ttl("hltest:linkage:nonce:110:" + NONCE) <= 600


async def test_two_verifiers_sharing_redis_reject_a_replay_across_processes(client):
    # Two processes of one service: the memory store could not see the other's nonces.
    peers = auth.PeerTable([auth.Peer("110", SECRET)])
    first = auth.Verifier(peers, RedisNonceStore(client))
    second = auth.Verifier(peers, RedisNonceStore(client))
    now = time.time()
    headers = auth.sign("110", SECRET, "POST", "/linkage/v1/orders", b"{}", now, nonce=NONCE)
    assert (await first.verify(headers, "POST", "/linkage/v1/orders", b"{}", now)).peer_id == "110"
    with pytest.raises(auth.AuthError) as caught:
        await second.verify(headers, "POST", "/linkage/v1/orders", b"{}", now)
    assert caught.value.code == "replayed"
    # ...whereas two memory stores would both have let it in.
    alone = auth.Verifier(peers, auth.MemoryNonceStore())
    await alone.verify(headers, "POST", "/linkage/v1/orders", b"{}", now)

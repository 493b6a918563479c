"""Peer authentication for the linkage API between the two platforms (issue 16).

Each peer (the other platform's service) has its own id and shared secret. It
signs every request with HMAC-SHA256 over a canonical string:

    METHOD "\\n" target "\\n" timestamp "\\n" nonce "\\n" hex(SHA-256(body))

- `target` is the path with its query, normalised (`canonical_target`): percent
  escapes of unreserved characters decoded, other escapes in upper case, any
  other byte that needs it percent-encoded (UTF-8), query parameters sorted by
  name then value. Two spellings of one URL sign alike; a change of any name,
  value or path segment does not.
- `timestamp` is integer epoch seconds, accepted within ±window (300 s).
- `nonce` is 16 to 64 random bytes, base64url without padding, used once.

The headers (`HEADER_*`): X-Linkage-Peer, X-Linkage-Timestamp, X-Linkage-Nonce,
X-Linkage-Signature (base64url of the HMAC, no padding).

Verification runs in a fixed order: headers well-formed (`malformed`), the
HMAC (computed for unknown peers too, with a dummy secret, so timing does not
tell which peers exist: `unknown_peer`, `bad_signature`), the time window
(`expired`), the peer's allowed sources (`source_not_allowed`), and last the
nonce (`replayed`), so that only a request that proved the secret can use up a
nonce. Every rejection is an `AuthError` (HTTP 401) and is logged without the
signature or any secret.

mTLS can be added under the HMAC: `server_ssl_context` / `client_ssl_context`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import ipaddress
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from redis.exceptions import RedisError

from telephony.control.errors import ControlError
from telephony.logging import get_logger

HEADER_PEER = "X-Linkage-Peer"
HEADER_TIMESTAMP = "X-Linkage-Timestamp"
HEADER_NONCE = "X-Linkage-Nonce"
HEADER_SIGNATURE = "X-Linkage-Signature"
HEADERS = (HEADER_PEER, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

MIN_SECRET_BYTES = 32
DEFAULT_WINDOW = 300  # seconds either side of the verifier's clock
NONCE_BYTES = 16  # what `sign` generates
MAX_NONCE_BYTES = 64
MAX_TARGET_CHARS = 2048
MAX_BODY_BYTES = 64 * 1024
DEFAULT_PREFIX = "/linkage/v1"

# A peer id is also part of a Redis key: no ':' and no control characters.
PEER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TIMESTAMP_RE = re.compile(r"^(0|[1-9][0-9]{0,11})$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{22,86}$")
_SIGNATURE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, unpadded
_METHOD_RE = re.compile(r"^[A-Za-z]{1,16}$")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Kept as they are (RFC 3986 sub-delims, ':', '@', '/'); '?' too inside the query.
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_QUERY_SAFE = (_PATH_SAFE | frozenset("?")) - frozenset("&=")


class AuthError(ControlError):
    """A linkage request refused: `code` says why, always HTTP 401."""

    code = "unauthorized"
    status = 401

    def __init__(self, code: str, message: str, **detail: object) -> None:
        super().__init__(message, code=code, **detail)


class BodyTooLarge(ControlError):
    code = "body_too_large"
    status = 413


class ReplayCheckUnavailable(ControlError):
    """The nonce store cannot answer (Redis down, memory store full): fail closed."""

    code = "replay_check_unavailable"
    status = 503


# --- peers ---------------------------------------------------------------------
@dataclass(frozen=True)
class Peer:
    peer_id: str
    secret: bytes = field(repr=False)
    # None: any source; else the networks the peer's requests must come from.
    allowed_sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None

    def allows(self, remote: str | None) -> bool:
        if self.allowed_sources is None:
            return True
        if not remote:
            return False
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        return any(address in network for network in self.allowed_sources)


class PeerTable:
    """peer id -> Peer, from config:

      peers:
        - {id: "110", secret: "<at least 32 bytes>", sources: ["10.0.0.0/24"]}
    """

    def __init__(self, peers: Iterable[Peer]) -> None:
        self._peers: dict[str, Peer] = {}
        for peer in peers:
            if not PEER_ID_RE.fullmatch(peer.peer_id):
                raise ValueError(f"peer id {peer.peer_id!r} not allowed")
            if len(peer.secret) < MIN_SECRET_BYTES:
                raise ValueError(f"secret for peer {peer.peer_id!r} is shorter than "
                                 f"{MIN_SECRET_BYTES} bytes")
            if peer.peer_id in self._peers:
                raise ValueError(f"peer {peer.peer_id!r} configured twice")
            self._peers[peer.peer_id] = peer
        # Signs for unknown peers, so that they cost what a known one costs.
        self.dummy_secret = secrets.token_bytes(MIN_SECRET_BYTES)

    def get(self, peer_id: str) -> Peer | None:
        return self._peers.get(peer_id)

    def __len__(self) -> int:
        return len(self._peers)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PeerTable:
        peers = []
        for item in config.get("peers", []):
            peer_id = str(item["id"])
            secret = item["secret"]
            secret = secret if isinstance(secret, bytes) else str(secret).encode("utf-8")
            sources = item.get("sources")
            if isinstance(sources, str):
                sources = [sources]
            networks = (tuple(ipaddress.ip_network(str(s), strict=False) for s in sources)
                        if sources is not None else None)
            peers.append(Peer(peer_id, secret, networks))
        return cls(peers)


# --- canonical form and signing ----------------------------------------------------
def _normalise(component: str, safe: frozenset[str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(component):
        char = component[i]
        if char == "%":
            escape = _ESCAPE_RE.match(component, i)
            if escape:
                decoded = chr(int(escape.group(1), 16))
                out.append(decoded if decoded in _UNRESERVED else "%" + escape.group(1).upper())
                i += 3
                continue
        if char in safe:
            out.append(char)
        else:
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass")))
        i += 1
    return "".join(out)


def canonical_target(target: str) -> str:
    """The path and query as signed: normalised escapes, query parameters sorted."""
    path, has_query, query = target.partition("?")
    canonical = _normalise(path, _PATH_SAFE)
    if not has_query:
        return canonical
    params: list[tuple[str, str]] = []
    for piece in query.split("&"):
        name, has_value, value = piece.partition("=")
        params.append((_normalise(name, _QUERY_SAFE),
                       "=" + _normalise(value, _QUERY_SAFE) if has_value else ""))
    return canonical + "?" + "&".join(name + value for name, value in sorted(params))


def canonical_string(method: str, target: str, timestamp: str, nonce: str,
                     body: bytes) -> str:
    return "\n".join((method.upper(), canonical_target(target), timestamp, nonce,
                      hashlib.sha256(body).hexdigest()))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def signature(secret: bytes, canonical: str) -> str:
    return _b64(hmac.new(secret, canonical.encode("utf-8"), hashlib.sha256).digest())


def new_nonce() -> str:
    return _b64(secrets.token_bytes(NONCE_BYTES))


def sign(peer_id: str, secret: bytes, method: str, path: str, body: bytes, now: float,
         nonce: str | None = None) -> dict[str, str]:
    """The headers that authenticate one request (client side).

    `path` is the target as sent, with its query; `now` the client's clock.
    """
    timestamp = str(int(now))
    nonce = nonce if nonce is not None else new_nonce()
    canonical = canonical_string(method, path, timestamp, nonce, body)
    return {HEADER_PEER: peer_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: signature(secret, canonical)}


# --- verification ---------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """The four headers of a request, checked for shape only."""

    peer_id: str
    timestamp: str
    nonce: str
    signature: str


def _malformed(message: str, header: str) -> AuthError:
    return AuthError("malformed", message, header=header)


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:  # a multidict (aiohttp's request headers)
        return list(getall(name, []))
    return [v for k, v in headers.items() if k.lower() == name.lower()]


def _header(headers: Mapping[str, str], name: str) -> str:
    values = _values(headers, name)
    if len(values) > 1:
        raise _malformed(f"{name} given more than once", name)
    value = values[0] if values else None
    if value is None:
        raise _malformed(f"{name} is missing", name)
    if not isinstance(value, str) or _CTRL_RE.search(value):
        raise _malformed(f"{name} holds control characters", name)
    return value


def _canonical_b64(value: str, low: int, high: int) -> bool:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return False
    return low <= len(raw) <= high and _b64(raw) == value


def parse_claim(headers: Mapping[str, str]) -> Claim:
    """The headers' values, or AuthError("malformed") naming the first bad one."""
    peer_id = _header(headers, HEADER_PEER)
    if not PEER_ID_RE.fullmatch(peer_id):
        raise _malformed("peer id not allowed", HEADER_PEER)
    timestamp = _header(headers, HEADER_TIMESTAMP)
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise _malformed("timestamp must be integer epoch seconds", HEADER_TIMESTAMP)
    nonce = _header(headers, HEADER_NONCE)
    if not _NONCE_RE.fullmatch(nonce) or not _canonical_b64(nonce, NONCE_BYTES, MAX_NONCE_BYTES):
        raise _malformed(f"nonce must be {NONCE_BYTES} to {MAX_NONCE_BYTES} bytes, "
                         "base64url without padding", HEADER_NONCE)
    sig = _header(headers, HEADER_SIGNATURE)
    if not _SIGNATURE_RE.fullmatch(sig) or not _canonical_b64(sig, 32, 32):
        raise _malformed("signature must be base64url of 32 bytes without padding",
                         HEADER_SIGNATURE)
    return Claim(peer_id, timestamp, nonce, sig)


def _check_request_line(method: str, path: str) -> None:
    if not _METHOD_RE.fullmatch(method):
        raise _malformed("method not allowed", "method")
    if (not path.startswith("/") or len(path) > MAX_TARGET_CHARS
            or _CTRL_RE.search(path)):
        raise _malformed("target must be a path of at most "
                         f"{MAX_TARGET_CHARS} characters", "target")


def check_signature(peers: PeerTable, headers: Mapping[str, str], method: str, path: str,
                    body: bytes, now: float, *, window: int = DEFAULT_WINDOW
                    ) -> tuple[Peer, Claim]:
    """Everything but the nonce's novelty and the source (pure, synchronous)."""
    claim = parse_claim(headers)
    _check_request_line(method, path)
    peer = peers.get(claim.peer_id)
    secret = peer.secret if peer is not None else peers.dummy_secret
    expected = signature(secret, canonical_string(method, path, claim.timestamp,
                                                  claim.nonce, body))
    matches = hmac.compare_digest(expected.encode("ascii"), claim.signature.encode("ascii"))
    if peer is None:
        raise AuthError("unknown_peer", "no such peer")
    if not matches:
        raise AuthError("bad_signature", "the signature does not match the request")
    if abs(now - int(claim.timestamp)) > window:
        raise AuthError("expired", f"timestamp outside ±{window} s of the server's clock",
                        server_time=int(now), window=window)
    return peer, claim


# --- replay protection --------------------------------------------------------------
class NonceStore(Protocol):
    """Remembers nonces for `ttl` seconds: at least twice the window, because a
    request stamped t is valid from t - window (seen first) until t + window."""

    ttl: int

    async def claim(self, peer_id: str, nonce: str, now: float) -> bool:
        """True the first time (peer, nonce) is seen within ttl, False afterwards."""
        ...


class MemoryNonceStore:
    """One process's nonces, expiring after `ttl`; refuses to forget an unexpired
    one to make room (ReplayCheckUnavailable instead), so it never lets a replay in."""

    def __init__(self, window: int = DEFAULT_WINDOW, max_entries: int = 100_000) -> None:
        self.ttl = 2 * window
        self.max_entries = max_entries
        self._expires: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._expires)

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires, key = heapq.heappop(self._heap)
            if self._expires.get(key) == expires:
                del self._expires[key]

    async def claim(self, peer_id: str, nonce: str, now: float) -> bool:
        self._purge(now)
        key = (peer_id, nonce)
        if key in self._expires:
            return False
        if len(self._expires) >= self.max_entries:
            raise ReplayCheckUnavailable("too many recent nonces to remember another")
        expires = now + self.ttl
        self._expires[key] = expires
        heapq.heappush(self._heap, (expires, key))
        return True


class NonceKeys:
    """Redis key names of the linkage nonces, beside telephony.store.Keys' namespaces."""

    def __init__(self, prefix: str = "hl") -> None:
        self.ns = f"{prefix}:linkage"

    def nonce(self, peer_id: str, nonce: str) -> str:
        return f"{self.ns}:nonce:{peer_id}:{nonce}"


class RedisNonceStore:
    """Nonces shared by every process of a service: `SET key 1 NX EX ttl`."""

    def __init__(self, redis: Any, window: int = DEFAULT_WINDOW,
                 keys: NonceKeys | None = None) -> None:
        self.redis = redis
        self.ttl = 2 * window
        self.keys = keys or NonceKeys()

    async def claim(self, peer_id: str, nonce: str, now: float) -> bool:
        try:
            created = await self.redis.set(self.keys.nonce(peer_id, nonce), "1",
                                           nx=True, ex=self.ttl)
        except RedisError as exc:
            raise ReplayCheckUnavailable("the nonce store is unavailable") from exc
        return bool(created)


class Verifier:
    """check_signature, then the peer's sources, then the nonce; logs every refusal."""

    def __init__(self, peers: PeerTable, nonces: NonceStore, *,
                 window: int = DEFAULT_WINDOW) -> None:
        if nonces.ttl < 2 * window:
            raise ValueError(f"the nonce store forgets after {nonces.ttl} s; a window of "
                             f"{window} s needs {2 * window} s")
        self.peers = peers
        self.nonces = nonces
        self.window = window
        self.log = get_logger("telephony.linkage.auth")

    async def verify(self, headers: Mapping[str, str], method: str, path: str, body: bytes,
                     now: float, *, source: str | None = None) -> Peer:
        try:
            peer, claim = check_signature(self.peers, headers, method, path, body, now,
                                          window=self.window)
            if not peer.allows(source):
                raise AuthError("source_not_allowed", "the peer may not call from here")
            if not await self.nonces.claim(peer.peer_id, claim.nonce, now):
                raise AuthError("replayed", "this nonce was already used")
        except ControlError as exc:
            self.rejected(exc, headers, method, path, source)
            raise
        return peer

    def rejected(self, exc: ControlError, headers: Mapping[str, str], method: str, path: str,
                 source: str | None) -> None:
        # Only values of a checked shape, never the signature; the JSON renderer
        # escapes whatever the path holds.
        peer = next(iter(_values(headers, HEADER_PEER)), None)
        nonce = next(iter(_values(headers, HEADER_NONCE)), None)
        self.log.warning("linkage_auth_rejected", code=exc.code, reason=exc.message,
                         peer=peer if peer and PEER_ID_RE.fullmatch(peer) else None,
                         nonce=nonce if nonce and _NONCE_RE.fullmatch(nonce) else None,
                         method=method[:16], path=path[:200], source=source)


# --- aiohttp middleware -----------------------------------------------------------
LINKAGE_PEER = web.RequestKey("linkage_peer", Peer)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _protected(request: web.Request, prefix: str) -> bool:
    # By the path as decoded, as sent, and by the route it matched: whichever says yes.
    resource = request.match_info.route.resource
    return (_under(request.path, prefix) or _under(request.raw_path, prefix)
            or (resource is not None and _under(resource.canonical, prefix)))


def _error(exc: ControlError) -> web.Response:
    return web.json_response({"error": exc.to_dict()}, status=exc.status)


def linkage_auth_middleware(peers: PeerTable, nonces: NonceStore, *,
                            prefix: str = DEFAULT_PREFIX,
                            clock: Callable[[], float] = time.time,
                            window: int = DEFAULT_WINDOW,
                            max_body_bytes: int = MAX_BODY_BYTES) -> Middleware:
    """Verifies every request under `prefix`; the handler finds the peer in
    request[LINKAGE_PEER] and the body, already read, through request.read()/json()."""
    verifier = Verifier(peers, nonces, window=window)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _protected(request, prefix):
            return await handler(request)
        source = request.remote
        try:
            parse_claim(request.headers)  # refuse before reading a body
        except AuthError as exc:
            verifier.rejected(exc, request.headers, request.method, request.raw_path, source)
            return _error(exc)
        too_large = BodyTooLarge(f"body exceeds {max_body_bytes} bytes")
        if (request.content_length or 0) > max_body_bytes:
            return _error(too_large)
        try:
            body = await request.read()  # kept by aiohttp: the handler reads it again
        except web.HTTPRequestEntityTooLarge:
            return _error(too_large)
        if len(body) > max_body_bytes:
            return _error(too_large)
        try:
            peer = await verifier.verify(request.headers, request.method, request.raw_path,
                                         body, clock(), source=source)
        except ControlError as exc:
            return _error(exc)
        request[LINKAGE_PEER] = peer
        return await handler(request)

    return middleware


# --- mTLS ---------------------------------------------------------------------------
def server_ssl_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context that requires a client certificate signed by the CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert_file, key_file)
    return context


def client_ssl_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext:
    """A TLS 1.2+ client context presenting cert/key and trusting only `ca_file`."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context

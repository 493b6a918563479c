"""Bearer tokens -> principals (agent, supervisor, admin), from config.

Config shape (YAML or a dict):
  tokens:
    - {token: "...", role: agent, subject: agent12345-1, platform: "12345"}
    - {token: "...", role: supervisor, subject: sup1, platform: "12345",
       endpoint: sup12345-1}
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from telephony.control.authz import Principal

MIN_TOKEN_LEN = 16
# Where the auth middleware leaves the request's principal for the handlers.
PRINCIPAL = web.RequestKey("principal", Principal)


class TokenTable:
    def __init__(self, entries: Mapping[str, Principal]) -> None:
        # Keyed by a digest so lookups don't leak the token through timing.
        self._by_digest = {self._digest(t): p for t, p in entries.items()}

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8")).digest()

    def lookup(self, token: str | None) -> Principal | None:
        if not token:
            return None
        # A dict lookup on the digest: the attacker controls the token, not its
        # SHA-256, so the lookup's timing says nothing useful about a valid token,
        # and a centre with thousands of agents pays no linear scan per request.
        return self._by_digest.get(self._digest(token))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TokenTable:
        entries: dict[str, Principal] = {}
        for item in config.get("tokens", []):
            token = str(item["token"])
            if len(token) < MIN_TOKEN_LEN:
                raise ValueError(f"token for {item.get('subject')!r} is shorter than "
                                 f"{MIN_TOKEN_LEN} characters")
            entries[token] = Principal(role=str(item["role"]), subject=str(item["subject"]),
                                       platform=str(item["platform"]),
                                       endpoint=item.get("endpoint"))
        return cls(entries)

"""A minimal AMI probe for lab readiness: login, Ping, logoff.

Deliberately independent of the service's AMI session code, so the lab can say
"Asterisk answers" even when the service is broken.
"""

from __future__ import annotations

import asyncio


async def _read_message(reader: asyncio.StreamReader) -> dict[str, str]:
    msg: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode(errors="replace")
        if not line:
            raise ConnectionError("AMI closed the connection")
        line = line.rstrip("\r\n")
        if not line:
            if msg:
                return msg
            continue
        key, _, value = line.partition(":")
        msg[key.strip()] = value.strip()


async def _response_to(reader: asyncio.StreamReader, action_id: str) -> dict[str, str]:
    while True:
        msg = await _read_message(reader)
        if msg.get("ActionID") == action_id and "Response" in msg:
            return msg


async def ami_ping(host: str, port: int, user: str, secret: str, limit: float = 3.0) -> bool:
    """True when the AMI at host:port accepts our login and answers Ping."""

    async def probe() -> bool:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            banner = await reader.readline()
            if not banner.startswith(b"Asterisk Call Manager"):
                return False
            writer.write(
                f"Action: Login\r\nActionID: l1\r\nUsername: {user}\r\n"
                f"Secret: {secret}\r\nEvents: off\r\n\r\n".encode()
            )
            if (await _response_to(reader, "l1")).get("Response") != "Success":
                return False
            writer.write(b"Action: Ping\r\nActionID: p1\r\n\r\n")
            ok = (await _response_to(reader, "p1")).get("Response") == "Success"
            writer.write(b"Action: Logoff\r\nActionID: o1\r\n\r\n")
            return ok
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(probe(), limit)
    except (TimeoutError, OSError, ConnectionError):
        return False

"""How the store's batches reach Redis: the Lua script (JSON in) against native commands.

    .venv/bin/python bench/bench_store_encoding.py [--writes 300000] [--repeat 3]

The same timeline writes (XADD of a step with its record, as telephony.store
builds them) go to one private redis-server on loopback over one plain socket,
in batches of 1,000, in four ways, alternating per repeat:

  * eval+json:   the batch JSON-encoded by the standard library, one EVAL of
                 telephony.store's batch script (the store before 2026-11-29);
  * eval+orjson: the same with orjson (what the store does now);
  * native:      one XADD per write packed by hiredis, one reply read per write;
  * native, no replies: the same inside CLIENT REPLY OFF/ON (no way to count
                 refused writes: shown only as the floor of the native way).

Reported per write: this process's CPU (encoding, sending, reading replies),
redis-server's CPU (from /proc), and the wall time. What decides the store's
design is the sum of the first two: on the service's machine they share the
same two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hiredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procfs import cpu_seconds
from telephony.lab.private_redis import private_redis
from telephony.store import _APPLY_BATCH, batch_json, timeline_write

_stdlib_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def writes(count: int) -> list[tuple[Any, ...]]:
    """Timeline steps shaped like the lab's: 30 per ticket, a handful of record fields."""
    out = []
    for i in range(count):
        record = {"call_id": f"1732848000.{i // 30}", "leg": f"1732848000.{i}",
                  "channel": f"PJSIP/agent12345-{i % 50:08x}", "bridge": "b-0123",
                  "node": "node12345", "summary": "市民反映夜间施工噪音"}
        out.append(timeline_write(f"hl:12345:timeline:T-{i // 30}", "leg_answered",
                                  f"{1732848000 + i // 1000}.{i % 1000:06d}", record))
    return out


def eval_payload(encode: Callable[[list[Any]], str | bytes]) -> Callable[[list[Any]], bytes]:
    def payload(chunk: list[Any]) -> bytes:
        return hiredis.pack_command(("EVAL", _APPLY_BATCH, "0", "10000", encode(chunk)))
    return payload


def native_payload(chunk: list[Any]) -> bytes:
    pack = hiredis.pack_command
    return b"".join([pack(("XADD", w[1], "MAXLEN", "~", "10000", "*", *w[2:])) for w in chunk])


def quiet_payload(chunk: list[Any]) -> bytes:
    return b"".join([hiredis.pack_command(("CLIENT", "REPLY", "OFF")), native_payload(chunk),
                     hiredis.pack_command(("CLIENT", "REPLY", "ON"))])


WAYS: dict[str, tuple[Callable[[list[Any]], bytes], Callable[[int], int]]] = {
    # name: (payload of one batch, replies that batch gets)
    "eval+json": (eval_payload(_stdlib_json), lambda n: 1),
    "eval+orjson": (eval_payload(batch_json), lambda n: 1),
    "native": (native_payload, lambda n: n),
    "native, no replies": (quiet_payload, lambda n: 1),  # CLIENT REPLY ON's +OK
}


def run(way: str, host: str, port: int, redis_pid: int, all_writes: list[Any],
        batch: int = 1000) -> tuple[float, float, float]:
    payload_of, replies_of = WAYS[way]
    with socket.create_connection((host, port)) as sock:
        sock.sendall(hiredis.pack_command(("FLUSHALL",)))
        sock.recv(100)
        reader = hiredis.Reader()
        cpu, redis_cpu, wall = time.process_time(), cpu_seconds(redis_pid), time.perf_counter()
        for start in range(0, len(all_writes), batch):
            chunk = all_writes[start:start + batch]
            sock.sendall(payload_of(chunk))
            expected, got = replies_of(len(chunk)), 0
            while got < expected:
                reader.feed(sock.recv(1 << 20))
                while (reply := reader.gets()) is not False:
                    if isinstance(reply, hiredis.ReplyError):
                        raise RuntimeError(f"{way}: {reply}")
                    got += 1
        n = len(all_writes)
        return ((time.process_time() - cpu) / n * 1e6,
                (cpu_seconds(redis_pid) - redis_cpu) / n * 1e6,
                (time.perf_counter() - wall) / n * 1e6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    all_writes = writes(args.writes)
    print(f"{args.writes:,} timeline writes, batches of 1,000; µs per write; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| way | repeat | client CPU | redis-server CPU | client + redis | wall |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir, private_redis(workdir) as (url, proc):
        host, port = url.split("//")[1].split("/")[0].split(":")
        for repeat in range(1, args.repeat + 1):
            for way in WAYS:  # alternating, so every way sees the same machine
                client, server, wall = run(way, host, int(port), proc.pid, all_writes)
                print(f"| {way} | {repeat} | {client:.2f} | {server:.2f} | "
                      f"{client + server:.2f} | {wall:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

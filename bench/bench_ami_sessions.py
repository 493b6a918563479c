"""AMI action round trip on a session that receives events against one that does not.

    .venv/bin/python bench/bench_ami_sessions.py [--seconds 50] [--load-rate 8]

Would the service's actions be answered sooner on a session of their own,
logged in with `Events: off`? Asterisk's manager thread for a session both
answers its actions and writes its events, so an action might wait behind the
event stream. On this lab it does not (docs/ami.md, "Event filtering"), so the
service keeps one session. Two sessions to node12345, side by side in one run:

  * events on: the service's own subscription (the tracker's and the
    controller's events, filtered on the server), drained as fast as they come;
  * events off: `Events: off` at login.

Each round sends one `Ping` on each, one after the other (the order alternates
per round), every 20 ms; reported are the round trips at p50/p90/p99/p99.9.
With --load-rate R > 0 the calls of bench_transfer.py at R calls/s run in a
child process meanwhile (the probe starts once its calls do), so the node is as
busy as in that benchmark; with 0 the lab only needs to be up.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402
from telephony.ami import AmiSession  # noqa: E402
from telephony.control.controller import FED_EVENTS  # noqa: E402
from telephony.lab.lab import Lab  # noqa: E402
from telephony.tracker import Tracker  # noqa: E402

QUANTILES = (50, 90, 99, 99.9)


def start_load(rate: float, seconds: float) -> subprocess.Popen[str]:
    """bench_transfer.py at `rate` for a little longer than the probe; returns once calls flow."""
    calls = int(rate * (seconds + 15))
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "bench_transfer.py"), "--rate", str(rate),
         "--calls", str(calls)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    for line in child.stderr:  # its progress lines; the calls start after "calls at"
        if "calls at" in line:
            break
    else:
        raise RuntimeError(f"bench_transfer.py stopped early (exit {child.wait()})")
    threading.Thread(target=child.stderr.read, daemon=True).start()  # never let it block
    time.sleep(5)  # agents answering, transfers under way
    return child


async def probe(seconds: float) -> dict[str, list[float]]:
    info = Lab().node_info("12345")
    events = sorted(Tracker().handled_events | FED_EVENTS | {"UserEvent", "FullyBooted"})
    sessions = {
        "events on": AmiSession("probe-events", info.ami_host, info.ami_port, info.ami_user,
                                info.ami_secret, events=events, queue_size=100_000),
        "events off": AmiSession("probe-actions", info.ami_host, info.ami_port, info.ami_user,
                                 info.ami_secret, login_events="off", server_filter=False),
    }
    for session in sessions.values():
        await session.start()
        await session.wait_ready(10)

    async def drain(session: AmiSession) -> None:
        while True:
            await session.event_queue.get()

    drainer = asyncio.create_task(drain(sessions["events on"]))
    rtts: dict[str, list[float]] = {name: [] for name in sessions}
    order = list(sessions)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for name in order:
                started = time.perf_counter()
                await sessions[name].ping()
                rtts[name].append((time.perf_counter() - started) * 1000)
            order.reverse()
            await asyncio.sleep(0.02)
    finally:
        drainer.cancel()
        for session in sessions.values():
            await session.close()
    return rtts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=50.0)
    parser.add_argument("--load-rate", type=float, default=8.0,
                        help="calls/s of bench_transfer.py meanwhile (0: no load)")
    args = parser.parse_args(argv)
    lab = Lab()
    if not all(asyncio.run(lab.ready()).values()):
        lab.up(timeout=90)
    child = start_load(args.load_rate, args.seconds) if args.load_rate > 0 else None
    try:
        rtts = asyncio.run(probe(args.seconds))
    finally:
        if child is not None:
            child.wait()
    print(f"Ping round trip on node12345, ms, {args.seconds:.0f} s, "
          f"load: {args.load_rate:g} calls/s of bench_transfer.py\n")
    print("| session | pings | " + " | ".join(f"p{q:g}" for q in QUANTILES) + " | max |")
    print("|---|---|" + "---|" * (len(QUANTILES) + 1))
    for name, values in rtts.items():
        cells = " | ".join(f"{percentile(values, q):.2f}" for q in QUANTILES)
        print(f"| {name} | {len(values)} | {cells} | {max(values):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

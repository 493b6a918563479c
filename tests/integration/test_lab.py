"""The lab itself: two real Asterisk 22 nodes, Redis with AOF, desks; up/down/status."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from telephony.lab import procs
from telephony.lab.amiping import ami_ping
from telephony.lab.lab import Lab
from telephony.lab.topology import NODES


def _our_pids(lab: Lab) -> dict[str, int]:
    return {name: rec.pid for name, rec in lab.state.procs().items()}


def test_both_nodes_run_asterisk_22_and_answer_ami(lab: Lab) -> None:
    for platform in NODES:
        info = lab.node_info(platform)
        assert asyncio.run(ami_ping(info.ami_host, info.ami_port, info.ami_user, info.ami_secret))
        version = lab.asterisk_cli(platform, "core show version")
        assert "Asterisk 22." in version, version
        # A wrong secret is refused (the ACL and the secret both apply).
        wrong = ami_ping(info.ami_host, info.ami_port, info.ami_user, "wrong-secret")
        assert not asyncio.run(wrong)


def test_dialplan_loads_without_errors_on_both_nodes(lab: Lab) -> None:
    for platform in NODES:
        out = lab.asterisk_cli(platform, "dialplan show")
        assert "extensions" in out and "contexts" in out
        for ctx in ("from-citizen", "from-trunk", "hotline-route", "hotline-xfer", "hotline-conf"):
            assert f"'{ctx}'" in out, (platform, ctx)
        # Start-up problems only: lines tagged with a call id ([C-...]) belong to calls.
        errors = [
            line for line in lab.node_log(platform).read_text().splitlines()
            if (" ERROR[" in line or " WARNING[" in line) and "][C-" not in line
        ]
        assert errors == [], errors[:5]


def test_keys_trunk_and_queue_are_live(lab: Lab) -> None:
    for platform, node in NODES.items():
        features = lab.asterisk_cli(platform, "features show")
        for key, digits in (("xfer110", "*1"), ("xfer12345", "*2"), ("leave3way", "*0")):
            assert any(key in ln and digits in ln for ln in features.splitlines()), key
        endpoints = lab.asterisk_cli(platform, "pjsip show endpoints")
        other = "110" if platform == "12345" else "12345"
        assert f"trunk{other}" in endpoints
        assert all(f"desk{d}" in endpoints for d in ("119", "120", "122"))
        assert node.queue in lab.asterisk_cli(platform, f"queue show {node.queue}")


def test_redis_runs_with_aof(lab: Lab) -> None:
    import redis

    r = redis.Redis.from_url(lab.redis_url)
    assert r.ping()
    assert r.config_get("appendonly")["appendonly"] == "yes"
    assert r.config_get("bind")["bind"] == "127.0.0.1"


def test_up_is_idempotent_and_down_leaves_nothing(lab: Lab) -> None:
    before = _our_pids(lab)
    t0 = time.monotonic()
    lab.up()
    assert _our_pids(lab) == before, "a second up must keep what runs"
    assert time.monotonic() - t0 < 15, "warm up must be fast"

    records = list(lab.state.procs().values())
    stopped = lab.down()
    assert sorted(stopped) == sorted(before)
    for rec in records:
        assert not procs.is_alive(rec), rec.name
    ok, lines = lab.status()
    assert not ok and "down" in lines[0]
    root = str(lab.root.path)
    mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    assert not [m for m in mounts if m.startswith(root)]
    # Nothing of ours still listens on the AMI ports.
    info = lab.node_info("12345")
    assert not asyncio.run(ami_ping(info.ami_host, info.ami_port, info.ami_user, info.ami_secret))

    lab.up(timeout=90)  # leave the lab up for the rest of the session
    ok, lines = lab.status()
    assert ok, lines

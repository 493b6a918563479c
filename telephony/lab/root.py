"""The Asterisk 22 root: a debootstrapped Debian sid tree, cached outside the clone.

Debian 12 has no asterisk package; sid has 22.x. The root is built once per
recipe (suite, variant, package list) and reused by later runs on the machine.
It is built in a temporary directory and renamed into place, so an interrupted
build never leaves a half root that looks ready.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_DIR = Path(os.environ.get("HOTLINE_CACHE_DIR", "/var/cache/hotline"))
RECIPE: dict[str, Any] = {
    "suite": "sid",
    "variant": "minbase",
    "include": ["asterisk", "asterisk-modules", "sip-tester"],
    "version": 1,  # bump to force a rebuild when the recipe's meaning changes
}
# Host packages the lab needs (Debian 12).
HOST_PACKAGES = ("debootstrap", "redis-server", "sip-tester", "espeak-ng", "sox", "util-linux")


class RootError(RuntimeError):
    pass


def recipe_hash(recipe: dict | None = None) -> str:
    data = json.dumps(recipe or RECIPE, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass(frozen=True)
class AsteriskRoot:
    path: Path

    @property
    def ready_marker(self) -> Path:
        return self.path / ".hotline-root-ready"

    def is_ready(self) -> bool:
        return self.ready_marker.exists() and (self.path / "usr/sbin/asterisk").exists()

    def version(self) -> str:
        out = subprocess.run(
            ["chroot", str(self.path), "asterisk", "-V"],
            capture_output=True, text=True, timeout=30, check=True,
        )
        return out.stdout.strip()


def default_root() -> AsteriskRoot:
    return AsteriskRoot(CACHE_DIR / f"asterisk-root-{recipe_hash()}")


def _log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def ensure_root(root: AsteriskRoot | None = None) -> AsteriskRoot:
    """Return a ready root, building it if missing or if the recipe changed."""
    root = root or default_root()
    if root.is_ready():
        return root
    if os.geteuid() != 0:
        raise RootError("building the Asterisk root needs root (debootstrap, chroot)")
    if not shutil.which("debootstrap"):
        raise RootError("debootstrap is not installed; run `make setup` (scripts/install-deps.sh)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = root.path.with_name(root.path.name + ".building")
    if tmp.exists():
        shutil.rmtree(tmp)
    cmd = [
        "debootstrap",
        f"--variant={RECIPE['variant']}",
        f"--include={','.join(RECIPE['include'])}",
        RECIPE["suite"],
        str(tmp),
    ]
    _log(f"building Asterisk root (about a minute): {' '.join(cmd)}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise RootError(f"debootstrap failed ({proc.returncode}):\n{tail}")
    (tmp / ".hotline-root-ready").write_text(json.dumps(RECIPE, sort_keys=True))
    if root.path.exists():
        shutil.rmtree(root.path)
    tmp.rename(root.path)
    _prune_old_roots(keep=root.path)
    _log(f"root ready: {root.path} ({root.version()})")
    return root


def _prune_old_roots(keep: Path) -> None:
    """Remove roots built from older recipes (they are 550 MB each)."""
    for other in CACHE_DIR.glob("asterisk-root-*"):
        if other != keep and other.is_dir() and not (other / "proc/self").exists():
            shutil.rmtree(other, ignore_errors=True)

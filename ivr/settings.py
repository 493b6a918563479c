"""IVR settings: timeouts, retries and surge mode, overridable from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

ENV_PREFIX = "HOTLINE_IVR_"


@dataclass(frozen=True)
class IvrSettings:
    digit_timeout_ms: int = 5000  # silence after a menu before its default applies
    emergency_key_timeout_ms: int = 3000  # after 0: short, 110 is the default
    police_wait_ms: int = 2000  # 110 menu: callers who press nothing go to police at once
    max_attempts: int = 2  # a menu is heard at most this often before its default
    surge_wait_threshold_s: int = 180  # estimated wait above this offers self-service
    surge_forced: bool = False  # always offer (lab tests, drills)
    announce_wait: bool = True  # position and estimated wait before queueing
    callback_max_digits: int = 20
    traffic_desk_enabled: bool = True  # 110 menu offers 122 for traffic accidents

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> IvrSettings:
        """HOTLINE_IVR_SURGE_WAIT_THRESHOLD_S=30 etc.; unknown or bad values raise ValueError."""
        env = os.environ if environ is None else environ
        base = cls()
        changes: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            if f.type in ("bool", bool):
                changes[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                changes[f.name] = int(raw)
        return replace(base, **changes)  # type: ignore[arg-type]  # values typed per field above

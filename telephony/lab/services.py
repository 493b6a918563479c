"""Both platform services running in this process against the lab (tests, demo, bench)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from ivr.settings import IvrSettings
from telephony.service import PlatformService, lab_config

# Queue announcements are exercised by the IVR's own tests; in scenes they only cost time.
QUIET_IVR = replace(IvrSettings(), announce_wait=False)


@contextlib.asynccontextmanager
async def running_services(
    ivr: IvrSettings = QUIET_IVR, platforms: tuple[str, ...] = ("12345", "110")
) -> AsyncIterator[dict[str, PlatformService]]:
    services: dict[str, PlatformService] = {}
    try:
        for platform in platforms:
            service = PlatformService(replace(lab_config(platform), ivr=ivr))
            services[platform] = service
            await service.start()
            await service.wait_ready(15)
        yield services
    finally:
        for service in services.values():
            await service.stop()

"""HTTP API (aiohttp, /api/v1): call-control resources, key action URLs, health, metrics."""

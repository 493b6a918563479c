"""Request bodies: JSON objects checked against a small field spec.

400 for a body that is not a JSON object, 422 for wrong, missing or unknown fields.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from telephony.control.errors import BadInput, Unprocessable
from telephony.control.validation import has_control_chars

# field -> (type, required)
Spec = dict[str, tuple[type, bool]]
# No field of this API (ids, targets, modes, outcomes) needs more; a 10 kB value is an attack.
MAX_FIELD_CHARS = 256


async def read_json(request: web.Request, spec: Spec) -> dict[str, Any]:
    raw = await request.read()  # honours client_max_size (413 beyond it)
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInput("body is not valid JSON", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise BadInput("body must be a JSON object", code="invalid_json")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise Unprocessable("unknown fields", code="unknown_fields", fields=unknown)
    for name, (kind, required) in spec.items():
        if name not in data or data[name] is None:
            if required:
                raise Unprocessable(f"{name} is required", code="missing_field", field=name)
            data[name] = None
        elif not isinstance(data[name], kind) or (kind is str and not data[name]):
            raise Unprocessable(f"{name} must be a {kind.__name__}", code="invalid_field",
                                field=name)
        elif kind is str and (len(data[name]) > MAX_FIELD_CHARS
                              or has_control_chars(data[name])):
            raise Unprocessable(f"{name} is too long or holds control characters",
                                code="invalid_field", field=name)
    return data

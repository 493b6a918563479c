"""Control errors: one machine-readable code each, mapped to an HTTP status.

The API layer turns these into JSON bodies; the DTMF path logs them. Keeping
the status next to the code means both paths agree on what went wrong.
"""

from __future__ import annotations


class ControlError(Exception):
    """Base: `code` is stable and machine-readable, `status` the HTTP status."""

    code = "control_error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, **detail: object) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class BadInput(ControlError):
    """Malformed request: wrong types, missing fields, unsafe characters."""

    code = "bad_input"
    status = 400


class Unprocessable(ControlError):
    """Well-formed but not allowed: a target outside the allow-list, a bad channel name."""

    code = "unprocessable"
    status = 422


class Forbidden(ControlError):
    code = "forbidden"
    status = 403


class NotFound(ControlError):
    code = "not_found"
    status = 404


class WrongState(ControlError):
    """The call or operation is not in a state that allows this (e.g. not bridged)."""

    code = "wrong_state"
    status = 409


class NodeUnavailable(ControlError):
    """The Asterisk node is not connected: nothing was sent."""

    code = "node_unavailable"
    status = 503

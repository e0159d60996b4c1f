"""The SensorThings API's errors: each carries the HTTP status, the query option and the place.

A bad request (400) names the option (``$filter``…) and the character position in it where the
parser or the compiler stopped; a request for something this server does not implement is 501;
a write is 405. Nothing the client sends may end in a 500 (tests/warehouse/sta/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any


class StaError(Exception):
    """An answer other than 200: ``status``, a message a user can act on, and where it failed."""

    status = 400

    def __init__(self, message: str, *, option: str | None = None, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.option = option
        self.position = position

    def body(self) -> dict[str, Any]:
        """The JSON body of the error answer."""
        where = ""
        if self.option is not None:
            where = f"{self.option}: "
            if self.position is not None:
                where += f"at position {self.position}: "
        out: dict[str, Any] = {
            "code": self.status,
            "type": "error",
            "message": where + self.message,
        }
        if self.option is not None:
            out["option"] = self.option
        if self.position is not None:
            out["position"] = self.position
        return out


class BadRequest(StaError):
    status = 400


class NotFound(StaError):
    status = 404


class MethodNotAllowed(StaError):
    status = 405


class NotImplementedOption(StaError):
    status = 501


class QueryTimeout(StaError):
    """The statement ran past the configured timeout: the query asks for too much at once."""

    status = 503

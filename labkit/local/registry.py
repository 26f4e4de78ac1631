"""The operations the local cloud serves itself, in moto's place.

A handler is registered under the botocore service name and the AWS operation
name, receives the parsed request as a :class:`Call` and returns a dict shaped
like the operation's output (the gateway serializes it with the service's own
protocol). To fail as AWS would, it raises :class:`ServiceError` with AWS's
error code. Operations with no handler here go on to moto.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[["Call"], dict[str, Any]]

OPERATIONS: dict[tuple[str, str], Handler] = {}


@dataclass(frozen=True)
class Call:
    """One API request as the gateway understood it.

    Attributes:
        service: botocore service name, such as ``"guardduty"``.
        operation: AWS operation name, such as ``"ListFindings"``.
        params: the request parsed against the operation's input shape.
        account_id: the caller's account.
        region: the region from the request's SigV4 credential scope.
        access_key_id: the caller's access key id, or None if unsigned.
        source_ip: the address the call is seen to come from.
        user_agent: the caller's User-Agent header.
    """

    service: str
    operation: str
    params: dict[str, Any]
    account_id: str
    region: str
    access_key_id: str | None = None
    source_ip: str = "127.0.0.1"
    user_agent: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class ServiceError(Exception):
    """An AWS error response: its code, message and HTTP status."""

    def __init__(self, code: str, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code


def operation(service: str, name: str) -> Callable[[Handler], Handler]:
    """Register a handler for one operation of one service.

    Args:
        service: botocore service name (``"cloudformation"``, ``"events"``).
        name: AWS operation name (``"CreateStack"``, ``"PutEvents"``).

    Returns:
        A decorator that records the function and returns it unchanged.
    """

    def register(handler: Handler) -> Handler:
        OPERATIONS[(service, name)] = handler
        return handler

    return register

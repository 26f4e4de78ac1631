"""The gateway: the one place every call to the local cloud passes through.

It is WSGI middleware in front of moto's server app. For each request it
reads who signed it and from where it comes, finds the service and the
operation in botocore's models, runs the hooks (recording, authorisation),
and then either serves the operation itself (see ``registry``) or lets moto
answer. Paths under ``/_labkit`` are the local cloud's own control API (the
lab clock, status); they are not AWS APIs and labkit uses them only in local
mode.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from moto.core.parse import RequestParserError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.datastructures import Headers

from labkit.local import protocol, settings, shapes
from labkit.local.registry import OPERATIONS, Call, ServiceError

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


@dataclass
class Exchange:
    """One request and, once known, its outcome; what hooks see."""

    call: Call | None
    request: protocol.Request
    status: int = 0
    error_code: str | None = None
    response_body: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)


BeforeHook = Callable[[Exchange], ServiceError | None]
AfterHook = Callable[[Exchange], None]
ControlHandler = Callable[[dict[str, Any]], dict[str, Any]]

BEFORE_HOOKS: list[BeforeHook] = []
AFTER_HOOKS: list[AfterHook] = []
CONTROL: dict[str, ControlHandler] = {}
RESET_HOOKS: list[Callable[[], None]] = []

# Regions that have been called; the simulation runs only where the lab is.
ACTIVE_REGIONS: set[str] = set()


class Gateway:
    """WSGI app: the local cloud's front door."""

    def __init__(self) -> None:
        self.moto = DomainDispatcherApplication(create_backend_app)
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path.startswith(settings.CONTROL_PREFIX):
            return self._control(environ, start_response)
        if path == "/moto-api/reset" and environ["REQUEST_METHOD"] == "POST":
            reset_state()

        request = _read_request(environ)
        call, operation = _understand(request)
        exchange = Exchange(call=call, request=request)
        for before in BEFORE_HOOKS:
            denied = before(exchange)
            if denied is not None and operation is not None:
                status, headers, body = protocol.serialize(operation, denied)
                return self._finish(exchange, start_response, status, headers, body)

        handler = OPERATIONS.get((call.service, call.operation)) if call else None
        if handler is not None and operation is not None and call is not None:
            status, headers, body = _serve(handler, call, operation, request)
            return self._finish(exchange, start_response, status, headers, body)
        return self._pass_to_moto(exchange, environ, start_response)

    def _pass_to_moto(
        self,
        exchange: Exchange,
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            captured["status"] = status
            captured["headers"] = headers
            return lambda _: None

        chunks = self.moto(environ, capture)
        body = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        status = int(str(captured["status"]).split(" ", 1)[0])
        headers = {
            k: v for k, v in captured["headers"] if k.lower() != "content-length"
        }
        return self._finish(exchange, start_response, status, headers, body)

    def _finish(
        self,
        exchange: Exchange,
        start_response: StartResponse,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> Iterable[bytes]:
        exchange.status = status
        exchange.response_body = body
        for after in AFTER_HOOKS:
            after(exchange)
        out = [(k, v) for k, v in headers.items() if k.lower() != "content-length"]
        out.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_reason(status)}", out)
        return [body]

    def _control(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        name = environ["PATH_INFO"][len(settings.CONTROL_PREFIX) :].strip("/")
        handler = CONTROL.get(name)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        if handler is None:
            status, payload = 404, {"error": f"no control operation {name!r}"}
        else:
            try:
                status, payload = 200, handler(json.loads(raw or b"{}"))
            except ValueError as error:
                status, payload = 400, {"error": str(error)}
        body = json.dumps(payload, default=str).encode()
        headers = [("Content-Type", "application/json")]
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_reason(status)}", headers)
        return [body]


def reset_state() -> None:
    """Forget everything the local cloud keeps beside moto's backends."""
    for reset in RESET_HOOKS:
        reset()


def _read_request(environ: dict[str, Any]) -> protocol.Request:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    headers = Headers()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.add(key[5:].replace("_", "-").title(), value)
    if environ.get("CONTENT_TYPE"):
        headers.add("Content-Type", environ["CONTENT_TYPE"])
    # Route on the raw path: an ARN in a path keeps its encoded slashes there.
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    path = (
        raw.split("?", 1)[0] if raw.startswith("/") else environ.get("PATH_INFO", "/")
    )
    return protocol.Request(
        method=environ["REQUEST_METHOD"],
        path=path,
        query_string=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=body,
    )


def _understand(request: protocol.Request) -> tuple[Call | None, Any]:
    signature = protocol.read_signature(request)
    service = protocol.service_for(signature)
    if service is None:
        return None, None
    operation = protocol.find_operation(service, request)
    if operation is None:
        return None, None
    region = signature.region or settings.DEFAULT_REGION
    ACTIVE_REGIONS.add(region)
    call = Call(
        service=service,
        operation=operation.name,
        params={},
        account_id=settings.LOCAL_ACCOUNT_ID,
        region=region,
        access_key_id=signature.access_key_id,
        source_ip=request.headers.get(settings.SOURCE_IP_HEADER) or settings.LAPTOP_IP,
        user_agent=request.headers.get("User-Agent", ""),
    )
    return call, operation


def _serve(
    handler: Callable[[Call], dict[str, Any]],
    call: Call,
    operation: Any,
    request: protocol.Request,
) -> tuple[int, dict[str, str], bytes]:
    try:
        params = protocol.parse_params(operation, request)
    except (RequestParserError, ValueError, KeyError, TypeError) as error:
        failure = ServiceError(
            "ValidationException", f"could not parse request: {error}"
        )
        return protocol.serialize(operation, failure)
    full = Call(**{**call.__dict__, "params": params})
    try:
        result: dict[str, Any] | ServiceError = handler(full)
    except ServiceError as error:
        result = error
    except Exception as error:  # noqa: BLE001 - the service boundary answers
        # A fault in a handler must still reach the caller as an AWS error it
        # can read (not an HTML page botocore retries); the log keeps the trace.
        logger.exception("%s.%s failed", call.service, call.operation)
        result = ServiceError(
            "InternalFailure", f"{type(error).__name__}: {error}", 500
        )
    if shapes.strict() and not isinstance(result, ServiceError):
        try:
            shapes.check_output(operation, result)
        except shapes.ShapeMismatch as error:
            logger.error(
                "%s.%s served a bad shape: %s", call.service, call.operation, error
            )
            result = ServiceError("InternalFailure", str(error), 500)
    return protocol.serialize(operation, result)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"

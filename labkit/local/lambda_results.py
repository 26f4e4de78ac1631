"""The outcome of one Lambda invocation, shaped as Lambda reports it.

A worker's reply, a timeout or a crashed worker all become an
:class:`InvokeResult`: the payload (the handler's JSON result or Lambda's
error object), the function error, and the log text Lambda writes around the
handler's own lines (``START``, ``END`` and the ``REPORT`` line).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from labkit.local.lambda_functions import FunctionSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one invocation, as Lambda reports it."""

    status_code: int
    payload: bytes
    function_error: str | None
    log_text: str
    request_id: str
    duration_ms: float
    init_duration_ms: float | None = None


def result_from_reply(
    spec: FunctionSpec, request_id: str, reply: dict[str, Any]
) -> InvokeResult:
    """Shape a worker's reply (result or handler error) into an InvokeResult."""
    error = reply.get("error")
    payload = json.dumps(error) if error else str(reply.get("payload", "null"))
    duration = float(reply.get("duration_ms", 0.0))
    init = reply.get("init_ms")
    report = _report_line(
        request_id, duration, spec.memory_mb, reply.get("max_memory_mb"), init
    )
    return InvokeResult(
        status_code=200,
        payload=payload.encode(),
        function_error="Unhandled" if error else None,
        log_text=_log_text(spec, request_id, str(reply.get("log", "")), report),
        request_id=request_id,
        duration_ms=duration,
        init_duration_ms=None if init is None else float(init),
    )


def timed_out_result(
    spec: FunctionSpec, request_id: str, now: datetime
) -> InvokeResult:
    """The result of a handler stopped at its timeout, invoked at ``now``."""
    seconds = f"{spec.timeout:.2f}"
    stamp = _iso_millis(now + timedelta(seconds=spec.timeout))
    return runtime_failure_result(
        spec,
        request_id,
        "Sandbox.Timedout",
        f"Task timed out after {seconds} seconds",
        spec.timeout * 1000,
        f"{stamp} {request_id} Task timed out after {seconds} seconds",
    )


def runtime_failure_result(
    spec: FunctionSpec,
    request_id: str,
    error_type: str,
    message: str,
    duration: float,
    log_line: str = "",
) -> InvokeResult:
    """The outcome of an invocation the runtime ended, not the handler."""
    error = {
        "errorType": error_type,
        "errorMessage": f"RequestId: {request_id} Error: {message}",
    }
    report = _report_line(request_id, duration, spec.memory_mb, None, None)
    return InvokeResult(
        status_code=200,
        payload=json.dumps(error).encode(),
        function_error="Unhandled",
        log_text=_log_text(spec, request_id, log_line, report),
        request_id=request_id,
        duration_ms=duration,
    )


def _report_line(
    request_id: str,
    duration: float,
    memory_mb: int,
    used_mb: int | None,
    init_ms: float | None,
) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration:.2f} ms",
        f"Billed Duration: {math.ceil(duration + (init_ms or 0.0))} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {used_mb if used_mb is not None else memory_mb} MB",
    ]
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    return "\t".join(parts)


def _log_text(
    spec: FunctionSpec, request_id: str, handler_log: str, report: str
) -> str:
    lines = [f"START RequestId: {request_id} Version: {spec.version}"]
    lines += handler_log.splitlines()
    lines += [f"END RequestId: {request_id}", report]
    return "\n".join(lines) + "\n"


def _iso_millis(when: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"

"""The local cloud's Lambda service: a function's stored code, run for real.

moto stores functions but runs no code without Docker. Here each function runs
in its own worker process, started with the environment Lambda gives a
function and kept warm between invokes; its log goes to CloudWatch Logs as
Lambda writes it. This module holds the process's one
:class:`~labkit.local.lambda_runtime.LambdaRuntime` and serves Lambda's
``Invoke`` operation with it. The parts live in their own modules:

- :mod:`labkit.local.lambda_functions`: a function's configuration and code.
- :mod:`labkit.local.lambda_runtime`: the warm workers and their invocations.
- :mod:`labkit.local.lambda_results`: an invocation's payload and log text.
- :mod:`labkit.local.lambda_environment`: a worker's environment and logs.
- :mod:`labkit.local.lambda_worker_process`: the handle on a worker process.
- :mod:`labkit.local.lambda_worker`: the worker process itself.

Only ``python3.x`` zip functions run, on the local cloud's own interpreter.
One worker serves a function, so its invocations run one at a time.
Asynchronous invocations that fail are not retried and have no destinations.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import threading
from datetime import datetime
from typing import Any

from labkit.local.lambda_functions import FunctionSpec, check_runnable, function_spec
from labkit.local.lambda_runtime import LambdaRuntime
from labkit.local.registry import Call, ServiceError, operation

logger = logging.getLogger(__name__)

LOG_TAIL_BYTES = 4096

_runtime: LambdaRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> LambdaRuntime:
    """Return this process's Lambda runtime, creating it on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = LambdaRuntime()
            atexit.register(_runtime.shutdown)
        return _runtime


def invoke_async(spec: FunctionSpec, event: Any, now: datetime | None = None) -> str:
    """Queue an asynchronous invocation (EventBridge deliveries use this)."""
    return runtime().invoke_async(spec, event, now)


def wait_idle(timeout: float) -> bool:
    """Wait for the process's queued invocations; False if ``timeout`` passed."""
    return runtime().wait_idle(timeout)


@operation("lambda", "Invoke")
def serve_invoke(call: Call) -> dict[str, Any]:
    """Lambda Invoke: RequestResponse, Event or DryRun, as AWS answers them."""
    params = call.params
    spec = function_spec(
        call.account_id, call.region, params["FunctionName"], params.get("Qualifier")
    )
    kind = params.get("InvocationType") or "RequestResponse"
    if kind not in ("RequestResponse", "Event", "DryRun"):
        message = (
            f"InvocationType {kind!r} is not valid; "
            "use RequestResponse, Event or DryRun"
        )
        raise ServiceError("InvalidParameterValueException", message)
    check_runnable(spec)
    event = _parse_payload(params.get("Payload"))
    if kind == "DryRun":
        return {"StatusCode": 204, "Payload": b""}
    if kind == "Event":
        invoke_async(spec, event)
        return {"StatusCode": 202, "Payload": b""}

    result = runtime().invoke(spec, event)
    reply: dict[str, Any] = {
        "StatusCode": result.status_code,
        "Payload": result.payload,
        "ExecutedVersion": spec.version,
    }
    if result.function_error:
        reply["FunctionError"] = result.function_error
    if params.get("LogType") == "Tail":
        tail = result.log_text.encode()[-LOG_TAIL_BYTES:]
        reply["LogResult"] = base64.b64encode(tail).decode()
    return reply


def _parse_payload(raw: Any) -> Any:
    if raw is None or raw in (b"", ""):
        return {}
    if hasattr(raw, "read"):
        raw = raw.read()
    try:
        return json.loads(raw)
    except (ValueError, TypeError) as error:
        message = f"Could not parse request body into json: {error}"
        raise ServiceError("InvalidRequestContentException", message) from None

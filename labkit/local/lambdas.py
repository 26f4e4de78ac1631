"""The local cloud's Lambda runtime: a function's stored code, run for real.

moto stores functions but runs no code without Docker. Here each function runs
in its own worker process (:mod:`labkit.local.lambda_worker`), started with the
environment Lambda gives a function (its execution role's temporary keys, its
region and variables, boto3 aimed at the local cloud) and kept warm between
invokes. Its log goes to CloudWatch Logs as Lambda writes it.

Only ``python3.x`` zip functions run, on the local cloud's own interpreter.
One worker serves a function, so its invocations run one at a time.
Asynchronous invocations that fail are not retried and have no destinations.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.utils import get_backend as lambda_backend

from labkit.local import internal, settings
from labkit.local.lambda_worker import WorkerProcess, library_dirs
from labkit.local.registry import Call, ServiceError, operation

logger = logging.getLogger(__name__)

LOG_TAIL_BYTES = 4096
# Lambda allows 10 s for a cold start's imports, on top of the function timeout.
INIT_TIMEOUT_S = 10.0
# A worker is replaced before its role credentials run out, as Lambda recycles
# execution environments; the margin keeps a handler from starting on keys
# that expire mid-call.
CREDENTIAL_MARGIN = timedelta(minutes=15)


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about one function version."""

    name: str
    arn: str
    handler: str
    runtime: str
    role_arn: str
    environment: dict[str, str]
    code_zip: bytes
    code_sha256: str
    timeout: float
    memory_mb: int
    region: str
    account_id: str
    version: str = "$LATEST"


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


def function_spec(
    account_id: str, region: str, name_or_arn: str, qualifier: str | None = None
) -> FunctionSpec:
    """Read a function's configuration and code from moto's Lambda backend.

    Args:
        account_id: the function's account.
        region: the function's region.
        name_or_arn: function name, full or partial ARN, optionally
            ``name:qualifier``.
        qualifier: a version or alias; ``$LATEST`` when omitted.

    Raises:
        ServiceError: ``ResourceNotFoundException`` if there is no such function.
    """
    name, arn_qualifier = _split_function_name(name_or_arn)
    # moto keeps functions in a second backend when its Docker use is off, as
    # the local cloud sets it; this picks the one its own responses use.
    backend = lambda_backend(account_id, region)
    try:
        fn = backend.get_function(name, qualifier or arn_qualifier)
    except LambdaClientError as error:
        raise ServiceError(error.error_type, error.message, error.code) from None
    return FunctionSpec(
        name=fn.function_name,
        arn=f"{fn.function_arn.split(':function:')[0]}:function:{fn.function_name}",
        handler=fn.handler or "",
        runtime=fn.run_time or "",
        role_arn=fn.role,
        environment={str(k): str(v) for k, v in fn.environment_vars.items()},
        code_zip=getattr(fn, "code_bytes", b""),
        code_sha256=fn.code_sha_256,
        timeout=float(fn.timeout),
        memory_mb=int(fn.memory_size),
        region=region,
        account_id=account_id,
        version=str(fn.version),
    )


def _split_function_name(value: str) -> tuple[str, str | None]:
    """Split a name, ``name:qualifier`` or (partial) ARN into name and qualifier."""
    parts = value.split(":")
    if "function" in parts:
        parts = parts[parts.index("function") + 1 :]
    return parts[0], (parts[1] if len(parts) > 1 else None)


class LambdaRuntime:
    """Runs functions in warm worker processes, one per function and code."""

    def __init__(self, max_async: int = 8) -> None:
        self._lock = threading.Lock()
        self._workers: dict[tuple[Any, ...], WorkerProcess] = {}
        self._max_async = max_async
        self._pool: ThreadPoolExecutor | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def invoke(
        self, spec: FunctionSpec, event: Any, *, now: datetime | None = None
    ) -> InvokeResult:
        """Run the function on ``event`` and wait for its result.

        Args:
            spec: the function, from :func:`function_spec`.
            event: any JSON value, passed to the handler as its first argument.
            now: the lab time the handler sees; the process clock when omitted.

        Returns:
            The status, payload (the JSON result or Lambda's error object),
            function error, log text, request id and duration.
        """
        now = now or datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        check_runnable(spec)
        request_id = str(uuid.uuid4())
        task_root = unpack_code(spec)
        for _attempt in range(3):
            worker = self._worker_for(spec, task_root, now)
            with worker.lock:
                if worker.alive():
                    result = self._run(worker, spec, event, request_id, now)
                    break
        else:
            raise ServiceError(
                "ServiceException", f"the worker of {spec.name!r} keeps exiting", 500
            )
        _write_log(spec, worker.log_stream, result, now)
        logger.info(
            "invoked %s (request %s): %s in %.0f ms",
            spec.name,
            request_id,
            result.function_error or "succeeded",
            result.duration_ms,
        )
        return result

    def invoke_async(
        self, spec: FunctionSpec, event: Any, now: datetime | None = None
    ) -> str:
        """Queue an invocation (InvocationType Event) and return at once.

        Returns:
            An id for the queued invocation, used in this module's log lines.
        """
        queued_id = str(uuid.uuid4())
        with self._idle:
            self._pending += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_async, "lambda-async")
            pool = self._pool
        future = pool.submit(self.invoke, spec, event, now=now)
        future.add_done_callback(lambda done: self._finished(done, spec, queued_id))
        return queued_id

    def _finished(
        self, done: Future[InvokeResult], spec: FunctionSpec, queued_id: str
    ) -> None:
        error = done.exception()
        if error is not None:
            logger.error(
                "async invoke %s of %s failed: %r", queued_id, spec.name, error
            )
        elif done.result().function_error:
            logger.warning(
                "async invoke %s of %s: handler failed", queued_id, spec.name
            )
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` real seconds for queued invocations to end.

        Returns:
            True if none is left running, False if the wait timed out.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self) -> None:
        """Stop every worker process and the asynchronous pool."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop()
        with self._idle:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def worker_pids(self) -> dict[str, int]:
        """Return the pid of each live worker, by function ARN (for tests)."""
        with self._lock:
            return {key[0]: w.proc.pid for key, w in self._workers.items() if w.alive()}

    def _worker_for(
        self, spec: FunctionSpec, task_root: Path, now: datetime
    ) -> WorkerProcess:
        key = (
            spec.arn,
            spec.version,
            spec.code_sha256,
            spec.handler,
            spec.role_arn,
            spec.memory_mb,
            tuple(sorted(spec.environment.items())),
        )
        with self._lock:
            worker = self._workers.get(key)
            usable = worker is not None and worker.alive()
            # Credentials expire on the local cloud's clock, the process clock.
            if worker is not None and usable:
                usable = datetime.now(UTC) < worker.expires - CREDENTIAL_MARGIN
            if worker is not None and usable:
                return worker
            stale = [k for k in self._workers if k[:2] == key[:2]]
            retired = [self._workers.pop(k) for k in stale]
            worker = _start_worker(spec, task_root, now)
            self._workers[key] = worker
        for old in retired:
            old.stop()
        return worker

    def _run(
        self,
        worker: WorkerProcess,
        spec: FunctionSpec,
        event: Any,
        request_id: str,
        now: datetime,
    ) -> InvokeResult:
        message = {
            "request_id": request_id,
            "event": event,
            "now": now.isoformat(),
            "timeout_ms": spec.timeout * 1000,
            "invoked_function_arn": _invoked_arn(spec),
        }
        started = time.monotonic()
        try:
            reply = worker.request(message, INIT_TIMEOUT_S, spec.timeout)
        except TimeoutError:
            worker.kill()
            return _timed_out(spec, request_id, now)
        if reply is None:
            status = worker.proc.wait()
            elapsed = (time.monotonic() - started) * 1000
            exit_text = f"Runtime exited with error: exit status {status}"
            return _runtime_failure(
                spec, request_id, "Runtime.ExitError", exit_text, elapsed
            )
        if reply.get("init_failed"):
            worker.stop()
        return _from_reply(spec, request_id, reply)


def _invoked_arn(spec: FunctionSpec) -> str:
    return spec.arn if spec.version == "$LATEST" else f"{spec.arn}:{spec.version}"


def _from_reply(
    spec: FunctionSpec, request_id: str, reply: dict[str, Any]
) -> InvokeResult:
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


def _timed_out(spec: FunctionSpec, request_id: str, now: datetime) -> InvokeResult:
    seconds = f"{spec.timeout:.2f}"
    stamp = _iso_millis(now + timedelta(seconds=spec.timeout))
    return _runtime_failure(
        spec,
        request_id,
        "Sandbox.Timedout",
        f"Task timed out after {seconds} seconds",
        spec.timeout * 1000,
        f"{stamp} {request_id} Task timed out after {seconds} seconds",
    )


def _runtime_failure(
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


def check_runnable(spec: FunctionSpec) -> None:
    """Refuse a function the local cloud cannot run.

    Raises:
        ServiceError: ``InvalidRuntimeException`` for a runtime other than
            ``python3.x``; container-image and other runtimes are not supported.
    """
    if not spec.runtime.startswith("python3"):
        message = (
            f"the local cloud runs python3.x zip functions only, not "
            f"{spec.runtime or 'a container image'!r}; deploy it to AWS instead"
        )
        raise ServiceError("InvalidRuntimeException", message, 502)


def unpack_code(spec: FunctionSpec) -> Path:
    """Unpack the function's zip once per code hash; return the folder.

    Raises:
        ServiceError: ``InvalidZipFileException`` if the code is not a zip.
    """
    digest = hashlib.sha256(spec.code_zip).hexdigest()
    root = settings.lab_home() / "lambda" / "code"
    target = root / digest
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        with zipfile.ZipFile(io.BytesIO(spec.code_zip)) as archive:
            archive.extractall(staging)
    except zipfile.BadZipFile:
        shutil.rmtree(staging)
        message = f"Lambda was unable to unzip the code of {spec.name!r}"
        raise ServiceError("InvalidZipFileException", message, 502) from None
    try:
        staging.rename(target)
    except OSError:
        # Another thread unpacked the same code first; theirs is identical.
        shutil.rmtree(staging)
    return target


def _start_worker(spec: FunctionSpec, task_root: Path, now: datetime) -> WorkerProcess:
    credentials = _role_credentials(spec)
    stream = f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
    env = _worker_env(spec, task_root, credentials, stream)
    log_path = settings.lab_home() / "lambda" / "workers.log"
    worker = WorkerProcess.start(task_root, env, log_path)
    worker.log_stream = stream
    worker.expires = credentials["Expiration"]
    logger.info("started Lambda worker %s for %s", worker.proc.pid, spec.name)
    return worker


def _role_credentials(spec: FunctionSpec) -> dict[str, Any]:
    sts = internal.client("sts", spec.region)
    try:
        # STS wants two characters at least; a one-letter function is legal.
        session = spec.name.ljust(2, "_")
        reply = sts.assume_role(RoleArn=spec.role_arn, RoleSessionName=session)
    except ClientError as error:
        message = (
            f"The role defined for the function cannot be assumed by Lambda: "
            f"{spec.role_arn!r} ({error.response['Error']['Code']})"
        )
        raise ServiceError("InvalidParameterValueException", message) from None
    return dict(reply["Credentials"])


def _worker_env(
    spec: FunctionSpec, task_root: Path, credentials: dict[str, Any], stream: str
) -> dict[str, str]:
    """Lambda's environment for the function; nothing of the parent's AWS_*."""
    home = settings.lab_home() / "lambda" / "home"
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    empty_config = home / ".aws" / "config"
    empty_credentials = home / ".aws" / "credentials"
    for path in (empty_config, empty_credentials):
        path.touch()
    env = dict(spec.environment)
    env.update(
        {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.defpath]),
            "PYTHONPATH": os.pathsep.join([str(task_root), *library_dirs()]),
            "HOME": str(home),
            "LANG": "en_US.UTF-8",
            "TZ": "UTC",
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ENDPOINT_URL": internal.endpoint_url(),
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(empty_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty_credentials),
        }
    )
    if "SYSTEMROOT" in os.environ:
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    return env


def _write_log(
    spec: FunctionSpec, stream: str, result: InvokeResult, now: datetime
) -> None:
    """Put the invocation's log lines in ``/aws/lambda/<name>``, at lab time.

    A failure to write is logged and does not fail the invocation: in AWS too a
    function whose logs cannot be written still runs.
    """
    group = f"/aws/lambda/{spec.name}"
    start = int(now.timestamp() * 1000)
    end = start + int(result.duration_ms)
    lines = result.log_text.splitlines()
    events = [
        {"timestamp": start if i < len(lines) - 2 else end, "message": line}
        for i, line in enumerate(lines)
    ]
    logs = internal.client("logs", spec.region)
    try:
        try:
            logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events
            )
        except logs.exceptions.ResourceNotFoundException:
            _ensure_stream(logs, group, stream)
            logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events
            )
    except ClientError as error:
        logger.warning(
            "could not write the log of %s to %s: %s", spec.name, group, error
        )


def _ensure_stream(logs: Any, group: str, stream: str) -> None:
    for call, kwargs in (
        (logs.create_log_group, {"logGroupName": group}),
        (logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
    ):
        try:
            call(**kwargs)
        except logs.exceptions.ResourceAlreadyExistsException:
            logger.debug("log resource already exists: %s", kwargs)


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

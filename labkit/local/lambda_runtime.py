"""The runtime that runs Lambda functions in warm worker processes.

Each function runs in its own worker process (:mod:`labkit.local.lambda_worker`),
kept warm between invokes and replaced when its code, configuration or role
credentials change. One worker serves a function, so its invocations run one
at a time. Asynchronous invocations run on a small thread pool; those that
fail are not retried and have no destinations.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from labkit.local.lambda_environment import start_worker, write_invocation_log
from labkit.local.lambda_functions import (
    FunctionSpec,
    check_runnable,
    invoked_arn,
    unpack_code,
)
from labkit.local.lambda_results import (
    InvokeResult,
    result_from_reply,
    runtime_failure_result,
    timed_out_result,
)
from labkit.local.lambda_worker_process import WorkerProcess
from labkit.local.registry import ServiceError

logger = logging.getLogger(__name__)

# Lambda allows 10 s for a cold start's imports, on top of the function timeout.
INIT_TIMEOUT_S = 10.0
# A worker is replaced before its role credentials run out, as Lambda recycles
# execution environments; the margin keeps a handler from starting on keys
# that expire mid-call.
CREDENTIAL_MARGIN = timedelta(minutes=15)


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
            spec: the function, from
                :func:`~labkit.local.lambda_functions.function_spec`.
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
        write_invocation_log(spec, worker.log_stream, result, now)
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
            worker = start_worker(spec, task_root, now)
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
            "invoked_function_arn": invoked_arn(spec),
        }
        started = time.monotonic()
        try:
            reply = worker.request(message, INIT_TIMEOUT_S, spec.timeout)
        except TimeoutError:
            worker.kill()
            return timed_out_result(spec, request_id, now)
        if reply is None:
            status = worker.proc.wait()
            elapsed = (time.monotonic() - started) * 1000
            exit_text = f"Runtime exited with error: exit status {status}"
            return runtime_failure_result(
                spec, request_id, "Runtime.ExitError", exit_text, elapsed
            )
        if reply.get("init_failed"):
            worker.stop()
        return result_from_reply(spec, request_id, reply)

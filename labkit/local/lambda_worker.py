"""One Lambda execution environment: a process that runs one function's handler.

The local cloud starts it by path (``python -S .../lambda_worker.py``, from
:mod:`labkit.local.lambda_worker_process`; ``python -m
labkit.local.lambda_worker`` works too) with the environment Lambda gives a
function (``_HANDLER``, ``LAMBDA_TASK_ROOT``, the execution role's keys...)
and talks to it in JSON lines: one request per line on stdin (``request_id``,
``event``, ``now``, ``timeout_ms``, ``invoked_function_arn``), one reply per
line on the protocol channel. The handler's prints and log records never reach
that channel; they come back in the reply's ``log`` text.

While a handler runs the process travels to the lab time of the request, so
``datetime.now()`` in the handler reads the lab clock, as the local cloud does.
The worker imports only the standard library and time-machine, and refuses to
let a handler import ``labkit``: deployed Lambda code has no labkit either.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import logging
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

logger = logging.getLogger(__name__)


def _import_time_machine() -> ModuleType:
    """Import time-machine without its pytest plugin.

    When pytest is importable, time-machine loads it (a third of a second) to
    offer a fixture; a worker has no use for it, and Lambda has no pytest.
    """
    absent = "pytest" not in sys.modules
    if absent:
        sys.modules["pytest"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module("time_machine")
    finally:
        if absent:
            del sys.modules["pytest"]


HandlerFunc = Callable[[Any, "LambdaContext"], Any]


class LambdaContext:
    """The second argument of a handler, with the attributes Lambda's has."""

    def __init__(self, request: dict[str, Any], started: float) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = str(request.get("invoked_function_arn", ""))
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.aws_request_id = str(request["request_id"])
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        # The deadline is kept on the monotonic clock, which time travel
        # leaves alone, so lab time never shortens or stretches a handler.
        self._deadline = started + float(request["timeout_ms"]) / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before the function times out."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _NoLabkit:
    """Make ``import labkit`` fail in handler code, as it would in AWS.

    A plain meta path finder: importing ``importlib.abc`` for its base class
    would cost a tenth of a second of every cold start.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: Any = None
    ) -> None:
        if fullname == "labkit" or fullname.startswith("labkit."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


class _LogFormatter(logging.Formatter):
    """Lambda's Python log line: level, UTC time, request id, message."""

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        when = (
            stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
        )
        return f"[{record.levelname}]\t{when}\t{self.request_id}\t{text}"


class _Worker:
    """The state of the environment between invocations."""

    def __init__(self, time_machine: ModuleType) -> None:
        self.handler: HandlerFunc | None = None
        self.time_machine = time_machine

    def load_handler(self) -> HandlerFunc:
        """Import the module named by ``_HANDLER`` and return its function."""
        spec = os.environ["_HANDLER"]
        module_name, _, func_name = spec.rpartition(".")
        if not module_name or not func_name:
            raise _RuntimeFailure(
                "Runtime.MalformedHandlerName",
                f"Bad handler '{spec}': not enough values to unpack "
                "(expected 2, got 1)",
            )
        module_name = module_name.replace("/", ".")
        try:
            module: ModuleType = importlib.import_module(module_name)
        except ImportError as error:
            raise _RuntimeFailure(
                "Runtime.ImportModuleError",
                f"Unable to import module '{module_name}': {error}",
            ) from error
        except SyntaxError as error:
            raise _RuntimeFailure(
                "Runtime.UserCodeSyntaxError",
                f"Syntax error in module '{module_name}': {error}",
            ) from error
        func = getattr(module, func_name, None)
        if not callable(func):
            raise _RuntimeFailure(
                "Runtime.HandlerNotFound",
                f"Handler '{func_name}' missing on module '{module_name}'",
            )
        return func  # type: ignore[no-any-return]

    def invoke(
        self,
        request: dict[str, Any],
        log: io.StringIO,
        announce: Callable[[], None],
    ) -> dict[str, Any]:
        """Run one request, importing the handler first on a cold start.

        ``announce`` is called once the handler is loaded, when the function's
        own timeout starts to run (a cold start's imports have their own).
        """
        started = time.monotonic()
        request_id = str(request["request_id"])
        reply: dict[str, Any] = {"request_id": request_id}
        now = datetime.fromisoformat(str(request["now"]))

        with self.time_machine.travel(now, tick=True), _captured(log, request_id):
            try:
                if self.handler is None:
                    self.handler = self.load_handler()
                    reply["init_ms"] = (time.monotonic() - started) * 1000
                announce()
                started = time.monotonic()
                context = LambdaContext(request, started)
                result = self.handler(request["event"], context)
                reply["payload"] = _marshal(result)
            except _RuntimeFailure as failure:
                reply["error"] = failure.body(request_id)
                reply["init_failed"] = self.handler is None
                print(f"[ERROR] {failure.error_type}: {failure.message}")
            except Exception as error:  # noqa: BLE001 - the handler's own error
                # An error while importing the module fails the whole start.
                reply["init_failed"] = self.handler is None
                reply["error"] = _error_body(error, request_id)
                print(f"[ERROR] {type(error).__name__}: {error}")
                print(traceback.format_exc().rstrip())

        reply["duration_ms"] = (time.monotonic() - started) * 1000
        reply["max_memory_mb"] = _peak_memory_mb()
        return reply


def _peak_memory_mb() -> int:
    """Return this worker's own peak resident memory, in MB.

    ``getrusage`` would report the parent's peak too: Linux carries
    ``ru_maxrss`` across the start of a new program, and the worker is started
    by the local cloud's large process. ``VmHWM`` is this process's own peak.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


class _RuntimeFailure(Exception):
    """A failure of the runtime itself (bad handler, unmarshallable result)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "errorMessage": self.message,
            "errorType": self.error_type,
            "requestId": request_id,
            "stackTrace": [],
        }


def _marshal(result: Any) -> str:
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as error:
        raise _RuntimeFailure(
            "Runtime.MarshalError", f"Unable to marshal response: {error}"
        ) from error


def _error_body(error: BaseException, request_id: str) -> dict[str, Any]:
    frames = traceback.extract_tb(error.__traceback__)
    # The worker's own frame is not the user's code; Lambda shows only theirs.
    user_frames = [f for f in frames if not f.filename.endswith("lambda_worker.py")]
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(user_frames),
    }


@contextlib.contextmanager
def _captured(log: io.StringIO, request_id: str) -> Iterator[None]:
    """Send prints and root-logger records into ``log`` while inside."""
    handler = logging.StreamHandler(log)
    handler.setFormatter(_LogFormatter(request_id))
    root = logging.getLogger()
    root.addHandler(handler)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = log
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        root.removeHandler(handler)


def _protocol_channels() -> tuple[TextIO, TextIO]:
    """Take stdin and stdout for the protocol; give the handler harmless ones.

    File descriptor 0 becomes ``/dev/null`` and 1 becomes the worker's error
    log, so a handler, a subprocess or a C library that reads or writes them
    directly cannot corrupt the conversation with the local cloud.
    """
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return requests, replies


def _forget_labkit() -> None:
    for name in [n for n in sys.modules if n == "labkit" or n.startswith("labkit.")]:
        del sys.modules[name]
    sys.meta_path.insert(0, _NoLabkit())


def _send(replies: TextIO, line: str) -> None:
    replies.write(line + "\n")
    replies.flush()


def main() -> int:
    """Serve requests until the local cloud closes stdin; return the status."""
    requests, replies = _protocol_channels()
    _forget_labkit()
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    # Started by file path, sys.path[0] is this package's folder: its sibling
    # modules must not be importable as top-level names by a handler.
    sys.path[0] = task_root
    os.chdir(task_root)
    worker = _Worker(_import_time_machine())

    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        log = io.StringIO()
        marker = json.dumps({"request_id": request["request_id"], "phase": "running"})
        reply = worker.invoke(request, log, functools.partial(_send, replies, marker))
        reply["log"] = log.getvalue()
        _send(replies, json.dumps(reply))
        if reply.get("init_failed"):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

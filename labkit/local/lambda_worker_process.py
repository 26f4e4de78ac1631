"""The local cloud's handle on a Lambda worker process.

A :class:`WorkerProcess` starts :mod:`labkit.local.lambda_worker` by file path,
with ``python -S`` and exactly the environment it is given, then speaks its
JSON-lines protocol: one request per line on the worker's stdin, and its
replies read back on a thread of their own. The worker finds its few
libraries through the ``PYTHONPATH`` that :func:`library_dirs` builds.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import queue
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Run as a script by path, not as ``-m labkit...``, so that starting a worker
# imports no part of the labkit package into it.
WORKER_SCRIPT = Path(__file__).with_name("lambda_worker.py")

# What a worker may import besides the standard library and the function's
# code: the SDK, as Lambda's Python runtime provides it, and time-machine.
WORKER_LIBRARIES = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "six",
    "urllib3",
    "time_machine",
    "_time_machine",
)


def library_dirs() -> list[str]:
    """The folders holding the worker's libraries, for its ``PYTHONPATH``."""
    found: set[str] = set()
    for name in WORKER_LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        package = spec.submodule_search_locations is not None
        found.add(str(origin.parent.parent if package else origin.parent))
    return sorted(found)


class WorkerProcess:
    """The local cloud's handle on one worker process and its replies.

    Attributes:
        proc: the process.
        lock: held by the one invocation the worker is serving.
        log_stream: the CloudWatch Logs stream of this execution environment.
        expires: when the role credentials in its environment expire.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lock = threading.Lock()
        self.log_stream = ""
        self.expires = datetime.max.replace(tzinfo=UTC)
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        reader = threading.Thread(target=self._read, name=f"lambda-{proc.pid}")
        reader.daemon = True
        reader.start()

    @classmethod
    def start(
        cls, task_root: Path, env: dict[str, str], log_path: Path
    ) -> WorkerProcess:
        """Start a worker in ``task_root`` with exactly ``env`` as environment.

        Its standard error (crashes of the worker itself) goes to ``log_path``.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as worker_log:
            proc = subprocess.Popen(
                # -S: no site-packages scan (a third of the start-up time); the
                # worker's few libraries come from PYTHONPATH instead.
                [sys.executable, "-S", str(WORKER_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=worker_log,
                cwd=task_root,
                env=env,
                text=True,
                encoding="utf-8",
                start_new_session=True,
            )
        return cls(proc)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.replies.put(json.loads(line))
        self.replies.put(None)

    def alive(self) -> bool:
        """Return True while the process runs."""
        return self.proc.poll() is None

    def request(
        self, message: dict[str, Any], init_s: float, run_s: float
    ) -> dict[str, Any] | None:
        """Send one request; return the reply, or None if the worker died.

        Raises:
            TimeoutError: the handler was not loaded within ``init_s`` seconds
                or did not return within ``run_s`` seconds of starting.
        """
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            # A closed pipe (the worker died) or a closed file (it was retired).
            return None
        try:
            reply = self.replies.get(timeout=init_s)
            if reply is not None and reply.get("phase") == "running":
                reply = self.replies.get(timeout=run_s)
        except queue.Empty:
            raise TimeoutError(run_s) from None
        return reply

    def kill(self) -> None:
        """End the process at once (a handler past its timeout)."""
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        """Close its input so it ends; kill it if it has not within a second."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                logger.debug("worker %s had already closed", self.proc.pid)
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.kill()

"""A function's execution environment: its worker's start-up and its logs.

Each worker starts with the environment Lambda gives a function: its
execution role's temporary keys, its region and variables, boto3 aimed at the
local cloud, and nothing of the local cloud's own ``AWS_*`` settings. Each
invocation's log lines then go to the environment's stream in CloudWatch Logs,
``/aws/lambda/<name>``, as Lambda writes them.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from labkit.local import internal, settings
from labkit.local.lambda_functions import FunctionSpec
from labkit.local.lambda_results import InvokeResult
from labkit.local.lambda_worker_process import WorkerProcess, library_dirs
from labkit.local.registry import ServiceError

logger = logging.getLogger(__name__)


def start_worker(spec: FunctionSpec, task_root: Path, now: datetime) -> WorkerProcess:
    """Start a worker for ``spec`` with its code in ``task_root``.

    Its log stream is named after ``now``, the lab time of its first invoke.

    Raises:
        ServiceError: ``InvalidParameterValueException`` if the function's role
            cannot be assumed.
    """
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


def write_invocation_log(
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

"""The local Lambda runtime runs stored handler code in warm worker processes."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from labkit.local import internal, lambdas, settings
from labkit.local.lambda_functions import FunctionSpec, function_spec
from labkit.local.lambda_runtime import LambdaRuntime
from labkit.local.registry import Call, ServiceError
from labkit.local.settings import LOCAL_ACCOUNT_ID

REGION = "eu-west-2"
ROLE_NAME = "lab-remediation-role"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}

IDENTITY_CODE = """
import boto3

def handler(event, context):
    identity = boto3.client("sts").get_caller_identity()
    ec2 = boto3.client("ec2")
    return {
        "arn": identity["Arn"],
        "vpcs": len(ec2.describe_vpcs()["Vpcs"]),
        "region": ec2.meta.region_name,
        "endpoint": ec2.meta.endpoint_url,
        "remaining": context.get_remaining_time_in_millis(),
        "context": [
            context.function_name,
            context.function_version,
            context.invoked_function_arn,
            context.memory_limit_in_mb,
            context.log_group_name,
        ],
    }
"""

ENV_CODE = """
import os

def handler(event, context):
    seen = {k: os.environ.get(k) for k in ("COLOUR", "ONLY_A", "SET_BY_A")}
    if event.get("mark"):
        os.environ["SET_BY_A"] = "yes"
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    return {"seen": seen, "aws": aws, "pid": os.getpid()}
"""

FAILING_CODE = """
def handler(event, context):
    raise ValueError(f"bad input {event['n']}")
"""

SLOW_CODE = """
import time

def handler(event, context):
    while True:
        time.sleep(0.02)
"""

CLOCK_CODE = """
import time
from datetime import datetime, timezone

def handler(event, context):
    return {"now": datetime.now(timezone.utc).isoformat(), "epoch": time.time()}
"""

LOGGING_CODE = """
import logging

logger = logging.getLogger()

def handler(event, context):
    print("hello from the handler")
    logger.warning("careful: %s", event["what"])
    return "done"
"""

EXIT_CODE = """
import os

def handler(event, context):
    if event.get("exit"):
        os._exit(3)
    return os.getpid()
"""

LABKIT_CODE = """
import labkit

def handler(event, context):
    return "imported"
"""


def build_zip(source: str, module: str = "app") -> bytes:
    """Return a zip holding one module file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{module}.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[union-attr]
    internal.configure(url)
    yield url
    server.stop()


@pytest.fixture
def runtime(
    endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LambdaRuntime]:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))
    fresh = LambdaRuntime()
    monkeypatch.setattr(lambdas, "_runtime", fresh)
    yield fresh
    fresh.shutdown()


@pytest.fixture
def make_function(runtime: LambdaRuntime) -> Callable[..., FunctionSpec]:
    iam = internal.client("iam", REGION)
    role = iam.create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]
    client = internal.client("lambda", REGION)

    def make(name: str, source: str, **options: Any) -> FunctionSpec:
        options.setdefault("Code", {"ZipFile": build_zip(source)})
        client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="app.handler",
            **options,
        )
        return function_spec(LOCAL_ACCOUNT_ID, REGION, name)

    return make


def invoke_json(runtime: LambdaRuntime, spec: FunctionSpec, event: Any) -> Any:
    """Invoke and return the decoded payload."""
    result = runtime.invoke(spec, event)
    assert result.status_code == 200
    return json.loads(result.payload)


def test_function_spec_reads_code_and_config(make_function: Callable[..., Any]) -> None:
    """function_spec returns the stored zip, handler, role and variables."""
    spec = make_function("fn-spec", CLOCK_CODE, Environment={"Variables": {"A": "1"}})

    assert zipfile.ZipFile(io.BytesIO(spec.code_zip)).namelist() == ["app.py"]
    assert spec.handler == "app.handler"
    assert spec.role_arn.endswith(f":role/{ROLE_NAME}")
    assert spec.environment == {"A": "1"}
    assert spec.timeout == 3.0 and spec.memory_mb == 128
    assert spec.arn == f"arn:aws:lambda:{REGION}:{LOCAL_ACCOUNT_ID}:function:fn-spec"
    assert function_spec(LOCAL_ACCOUNT_ID, REGION, spec.arn) == spec


def test_function_spec_reads_code_from_s3(
    make_function: Callable[..., FunctionSpec],
) -> None:
    """Code uploaded to S3 and named by bucket and key is found as well."""
    archive = build_zip(CLOCK_CODE)
    s3 = internal.client("s3", REGION)
    s3.create_bucket(
        Bucket="lab-artifacts",
        CreateBucketConfiguration={"LocationConstraint": REGION},
    )
    s3.put_object(Bucket="lab-artifacts", Key="code/clock.zip", Body=archive)

    spec = make_function(
        "fn-s3", "", Code={"S3Bucket": "lab-artifacts", "S3Key": "code/clock.zip"}
    )

    assert spec.code_zip == archive


def test_function_spec_unknown_name_raises_not_found(runtime: LambdaRuntime) -> None:
    """An unknown function is ResourceNotFoundException, as Lambda says."""
    with pytest.raises(ServiceError) as caught:
        function_spec(LOCAL_ACCOUNT_ID, REGION, "no-such-function")

    assert caught.value.code == "ResourceNotFoundException"
    assert caught.value.status_code == 404


def test_invoke_handler_calls_local_cloud_as_execution_role(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec], endpoint: str
) -> None:
    """The handler's boto3 reaches the local cloud as the role's session."""
    # moto builds its EC2 region (AMIs, default VPC) on the first call: seconds.
    spec = make_function("fn-identity", IDENTITY_CODE, Timeout=60)

    body = invoke_json(runtime, spec, {})

    expected = f"arn:aws:sts::{LOCAL_ACCOUNT_ID}:assumed-role/{ROLE_NAME}/fn-identity"
    assert body["arn"] == expected
    assert body["vpcs"] >= 1
    assert body["region"] == REGION
    assert body["endpoint"] == endpoint
    assert 0 < body["remaining"] <= 60_000
    assert body["context"] == [
        "fn-identity",
        "$LATEST",
        spec.arn,
        "128",
        "/aws/lambda/fn-identity",
    ]


def test_invoke_functions_do_not_share_environment(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """Each function sees only its own variables, even after another sets one."""
    first = make_function(
        "fn-a", ENV_CODE, Environment={"Variables": {"COLOUR": "red", "ONLY_A": "1"}}
    )
    second = make_function(
        "fn-b", ENV_CODE, Environment={"Variables": {"COLOUR": "blue"}}
    )

    seen_a = invoke_json(runtime, first, {"mark": True})["seen"]
    seen_b = invoke_json(runtime, second, {})["seen"]

    assert seen_a == {"COLOUR": "red", "ONLY_A": "1", "SET_BY_A": None}
    assert seen_b == {"COLOUR": "blue", "ONLY_A": None, "SET_BY_A": None}


def test_invoke_parent_aws_settings_do_not_leak(
    runtime: LambdaRuntime,
    make_function: Callable[..., FunctionSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker gets Lambda's AWS_* variables and none of the parent's."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "leaked-from-parent")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_LEAK_MARKER", "leaked-from-parent")
    spec = make_function("fn-leak", ENV_CODE)

    aws = invoke_json(runtime, spec, {})["aws"]

    assert "leaked-from-parent" not in aws.values()
    assert aws["AWS_DEFAULT_REGION"] == REGION
    assert aws["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert aws["AWS_EC2_METADATA_DISABLED"] == "true"
    assert Path(aws["AWS_CONFIG_FILE"]).read_text() == ""
    assert Path(aws["AWS_SHARED_CREDENTIALS_FILE"]).read_text() == ""
    assert not aws["AWS_CONFIG_FILE"].startswith(str(Path.home() / ".aws"))
    assert set(aws) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    }


def test_invoke_reuses_warm_worker_until_code_changes(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """Invokes share one process; new code gets a new one and the old one ends."""
    spec = make_function("fn-warm", ENV_CODE)
    first = invoke_json(runtime, spec, {})["pid"]
    second = invoke_json(runtime, spec, {})["pid"]
    internal.client("lambda", REGION).update_function_code(
        FunctionName="fn-warm", ZipFile=build_zip(ENV_CODE + "\n# v2\n")
    )
    updated = function_spec(LOCAL_ACCOUNT_ID, REGION, "fn-warm")

    third = invoke_json(runtime, updated, {})["pid"]

    assert first == second
    assert updated.code_sha256 != spec.code_sha256
    assert third != first
    assert runtime.worker_pids() == {spec.arn: third}


def test_invoke_concurrent_calls_share_one_worker(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """Invocations from several threads all succeed, one at a time, in one worker."""
    spec = make_function("fn-threads", ENV_CODE)
    pids: list[int] = []

    def call() -> None:
        pids.append(invoke_json(runtime, spec, {})["pid"])

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(pids) == 4
    assert len(set(pids)) == 1


def test_invoke_exception_is_unhandled_function_error(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """A raised exception gives FunctionError Unhandled and Lambda's error object."""
    spec = make_function("fn-fail", FAILING_CODE)

    result = runtime.invoke(spec, {"n": 42})
    error = json.loads(result.payload)

    assert result.status_code == 200
    assert result.function_error == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad input 42"
    assert any("app.py" in frame for frame in error["stackTrace"])
    assert "[ERROR] ValueError: bad input 42" in result.log_text


def test_invoke_timeout_kills_worker_and_reports(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """A handler past its timeout is stopped and reported as Lambda does."""
    spec = dataclasses.replace(make_function("fn-slow", SLOW_CODE), timeout=0.3)

    result = runtime.invoke(spec, {})
    error = json.loads(result.payload)

    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 0.30 seconds")
    assert "Task timed out after 0.30 seconds" in result.log_text
    assert runtime.worker_pids() == {}


def test_invoke_worker_exit_is_reported_and_restarted(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """A worker that exits gives Runtime.ExitError; the next invoke starts anew."""
    spec = make_function("fn-exit", EXIT_CODE)
    before = invoke_json(runtime, spec, {})

    result = runtime.invoke(spec, {"exit": True})
    after = invoke_json(runtime, spec, {})

    error = json.loads(result.payload)
    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("exit status 3")
    assert after != before


def test_invoke_handler_sees_lab_time(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """datetime.now() and time.time() in the handler read the lab clock."""
    spec = make_function("fn-clock", CLOCK_CODE)
    lab_now = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)

    body = json.loads(runtime.invoke(spec, {}, now=lab_now).payload)
    seen = datetime.fromisoformat(body["now"])

    assert 0 <= (seen - lab_now).total_seconds() < 60
    assert 0 <= body["epoch"] - lab_now.timestamp() < 60


def test_invoke_writes_log_group_lines(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """The log group gets START, the handler's lines, END and REPORT."""
    spec = make_function("fn-logs", LOGGING_CODE)

    result = runtime.invoke(spec, {"what": "the edge"})
    logs = internal.client("logs", REGION)
    events = logs.filter_log_events(logGroupName="/aws/lambda/fn-logs")["events"]
    messages = [event["message"] for event in events]

    rid = result.request_id
    assert messages[0] == f"START RequestId: {rid} Version: $LATEST"
    assert "hello from the handler" in messages
    assert any(
        m.startswith("[WARNING]\t") and m.endswith(f"\t{rid}\tcareful: the edge")
        for m in messages
    )
    assert messages[-2] == f"END RequestId: {rid}"
    assert messages[-1].startswith(f"REPORT RequestId: {rid}\tDuration: ")
    assert "Init Duration: " in messages[-1]


def test_invoke_handler_cannot_import_labkit(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """Handler code has no labkit, as in AWS: the import fails at init."""
    spec = make_function("fn-labkit", LABKIT_CODE)

    result = runtime.invoke(spec, {})
    error = json.loads(result.payload)

    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'labkit'" in error["errorMessage"]


def call_invoke(name: str, **params: Any) -> dict[str, Any]:
    """Call the Invoke operation handler as the gateway would."""
    call = Call(
        service="lambda",
        operation="Invoke",
        params={"FunctionName": name, **params},
        account_id=LOCAL_ACCOUNT_ID,
        region=REGION,
    )
    return lambdas.serve_invoke(call)


def test_serve_invoke_request_response_with_log_tail(
    make_function: Callable[..., FunctionSpec],
) -> None:
    """RequestResponse returns 200, the JSON payload and a base64 log tail."""
    make_function("fn-op", LOGGING_CODE)

    reply = call_invoke("fn-op", Payload=b'{"what": "x"}', LogType="Tail")

    assert reply["StatusCode"] == 200
    assert json.loads(reply["Payload"]) == "done"
    assert "FunctionError" not in reply
    assert reply["ExecutedVersion"] == "$LATEST"
    tail = base64.b64decode(reply["LogResult"]).decode()
    assert tail.startswith("START RequestId: ") and "REPORT RequestId: " in tail


def test_serve_invoke_failure_sets_function_error(
    make_function: Callable[..., FunctionSpec],
) -> None:
    """A failing handler is reported in the FunctionError field."""
    make_function("fn-op-fail", FAILING_CODE)

    reply = call_invoke("fn-op-fail", Payload=b'{"n": 1}')

    assert reply["FunctionError"] == "Unhandled"
    assert json.loads(reply["Payload"])["errorType"] == "ValueError"


def test_serve_invoke_event_runs_in_background(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """Event returns 202 at once; wait_idle returns once the handler has run."""
    make_function("fn-async", LOGGING_CODE)

    reply = call_invoke("fn-async", InvocationType="Event", Payload=b'{"what": 1}')

    assert reply == {"StatusCode": 202, "Payload": b""}
    assert lambdas.wait_idle(30)
    logs = internal.client("logs", REGION)
    events = logs.filter_log_events(logGroupName="/aws/lambda/fn-async")["events"]
    assert "hello from the handler" in [event["message"] for event in events]


def test_serve_invoke_dry_run_runs_nothing(
    runtime: LambdaRuntime, make_function: Callable[..., FunctionSpec]
) -> None:
    """DryRun checks the function exists and returns 204 without a worker."""
    make_function("fn-dry", LOGGING_CODE)

    reply = call_invoke("fn-dry", InvocationType="DryRun")

    assert reply["StatusCode"] == 204
    assert runtime.worker_pids() == {}


def test_serve_invoke_bad_json_payload_is_refused(
    make_function: Callable[..., FunctionSpec],
) -> None:
    """A payload that is not JSON is InvalidRequestContentException."""
    make_function("fn-json", LOGGING_CODE)

    with pytest.raises(ServiceError) as caught:
        call_invoke("fn-json", Payload=b"{not json")

    assert caught.value.code == "InvalidRequestContentException"


def test_local_cloud_invoke_through_gateway(fresh_cloud: str) -> None:
    """boto3's Invoke against the local cloud runs the code and parses cleanly."""
    options = {
        "region_name": REGION,
        "endpoint_url": fresh_cloud,
        "aws_access_key_id": settings.LOCAL_ACCESS_KEY_ID,
        "aws_secret_access_key": settings.LOCAL_SECRET_ACCESS_KEY,
    }
    session = boto3.session.Session()
    iam = session.client("iam", **options)
    client = session.client("lambda", **options)
    role = iam.create_role(
        RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]
    client.create_function(
        FunctionName="fn-gateway",
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": build_zip(LOGGING_CODE)},
    )

    reply = client.invoke(
        FunctionName="fn-gateway", Payload=b'{"what": "x"}', LogType="Tail"
    )

    assert reply["StatusCode"] == 200
    assert json.loads(reply["Payload"].read()) == "done"
    assert "hello from the handler" in base64.b64decode(reply["LogResult"]).decode()

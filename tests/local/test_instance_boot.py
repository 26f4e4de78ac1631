"""An instance's boot calls pass the gateway as its role, from its address."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from werkzeug.serving import make_server

from labkit.local import gateway, instance_roles, internal, workloads
from labkit.local.gateway import Exchange

REGION = "eu-west-2"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
SCRIPT = """#!/bin/bash
aws ssm put-parameter --region eu-west-2 --name boot_sample \\
  --type SecureString --value 'Boot-Value' --overwrite
aws dynamodb put-item --table-name Boot-Table --item '{"name": {"S": "n"}}'
"""


@pytest.fixture
def recorded() -> Iterator[list[Exchange]]:
    """The gateway served in this process, every exchange through it recorded."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, gateway.Gateway(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    internal.configure(url)
    requests.post(f"{url}/moto-api/reset", timeout=30)
    seen: list[Exchange] = []
    gateway.AFTER_HOOKS.append(seen.append)
    yield seen
    gateway.AFTER_HOOKS.remove(seen.append)
    server.shutdown()


def launch(script: str, *, profile: bool = True) -> str:
    """Launch one instance with ``script`` as user data; return its id."""
    iam = internal.client("iam", REGION)
    params: dict[str, object] = {}
    if profile:
        iam.create_role(
            RoleName="Boot-Role", AssumeRolePolicyDocument=json.dumps(TRUST)
        )
        iam.create_instance_profile(InstanceProfileName="Boot-Profile")
        iam.add_role_to_instance_profile(
            InstanceProfileName="Boot-Profile", RoleName="Boot-Role"
        )
        params["IamInstanceProfile"] = {"Name": "Boot-Profile"}
    internal.client("dynamodb", REGION).create_table(
        TableName="Boot-Table",
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    reply = internal.client("ec2", REGION).run_instances(
        ImageId="ami-0e5df6fd7455a69b3",
        MinCount=1,
        MaxCount=1,
        UserData=script,
        **params,
    )
    return str(reply["Instances"][0]["InstanceId"])


def tick() -> None:
    """One simulated minute of the workloads."""
    workloads._tick(datetime.now(UTC), timedelta(minutes=1))


def boot_exchanges(seen: list[Exchange]) -> list[Exchange]:
    """The exchanges of the two boot operations, in order."""
    wanted = {"PutParameter", "PutItem"}
    return [e for e in seen if e.call is not None and e.call.operation in wanted]


def test_boot_calls_are_signed_by_the_role_from_the_instance(
    recorded: list[Exchange],
) -> None:
    """Both calls carry the role session's key and the instance's public address."""
    instance_id = launch(SCRIPT)
    tick()

    (instance,) = workloads.running_instances(REGION)
    credentials = instance_roles.role_credentials(instance)
    assert credentials is not None
    assert credentials["AccessKeyId"].startswith("ASIA")
    caller = internal.client("sts", REGION, credentials=credentials)
    arn = caller.get_caller_identity()["Arn"]
    assert arn.endswith(f":assumed-role/Boot-Role/{instance_id}")

    calls = [e.call for e in boot_exchanges(recorded) if e.call is not None]
    assert [c.operation for c in calls] == ["PutParameter", "PutItem"]
    assert instance.public_ip
    for call in calls:
        assert call.access_key_id == credentials["AccessKeyId"]
        assert call.source_ip == instance.public_ip
        assert call.region == REGION
    assert all(e.status == 200 for e in boot_exchanges(recorded))


def test_boot_runs_once_per_instance(recorded: list[Exchange]) -> None:
    """User data runs at the first step only; later steps make no boot calls."""
    launch(SCRIPT)
    tick()
    tick()
    tick()

    assert len(boot_exchanges(recorded)) == 2
    parameter = internal.client("ssm", REGION).get_parameter(
        Name="boot_sample", WithDecryption=True
    )["Parameter"]
    assert (parameter["Value"], parameter["Version"]) == ("Boot-Value", 1)


def test_boot_without_a_role_calls_nothing(
    recorded: list[Exchange], caplog: pytest.LogCaptureFixture
) -> None:
    """No instance profile, no keys: the CLI fails and no call reaches the cloud."""
    instance_id = launch(SCRIPT, profile=False)
    tick()

    assert boot_exchanges(recorded) == []
    assert f"{instance_id} has no instance-profile role" in caplog.text

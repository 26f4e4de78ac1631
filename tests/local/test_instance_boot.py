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

# boot_calls registers the aws-cli workload that _tick plays.
from labkit.local import (  # noqa: F401
    boot_calls,
    detector,
    gateway,
    instance_roles,
    internal,
    workloads,
)
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


def operations(seen: list[Exchange]) -> list[str]:
    """The operations of every exchange, in order."""
    return [e.call.operation for e in seen if e.call is not None]


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


def test_a_failed_call_skips_the_rest_of_its_and_list(recorded: list[Exchange]) -> None:
    """bash runs b in `a && b` only if a succeeded; so does the player."""
    launch(
        "aws ssm get-parameter --name missing && "
        "aws ssm put-parameter --name skipped --type String --value v\n"
        "aws ssm put-parameter --name written --type String --value v\n"
    )
    tick()

    found = internal.client("ssm", REGION).describe_parameters()["Parameters"]
    assert [p["Name"] for p in found] == ["written"]
    assert operations(recorded).count("PutParameter") == 1


def test_set_e_ends_the_script_at_a_failed_call(recorded: list[Exchange]) -> None:
    """With set -e a failed call is the last one the script makes."""
    launch(
        "#!/bin/bash\nset -e\n"
        "aws ssm get-parameter --name missing\n"
        "aws ssm put-parameter --name never --type String --value v\n"
    )
    tick()

    assert "GetParameter" in operations(recorded)
    assert "PutParameter" not in operations(recorded)


def test_the_local_clouds_own_iam_reads_are_no_api_calls(
    recorded: list[Exchange],
) -> None:
    """Finding the role for IMDS, or the profile for a finding, calls no IAM API."""
    launch(SCRIPT)
    (instance,) = workloads.running_instances(REGION)
    recorded.clear()

    assert instance_roles.role_credentials(instance) is not None
    resource = detector.instance_resource(instance)

    profile = internal.client("iam", REGION).get_instance_profile(
        InstanceProfileName="Boot-Profile"
    )["InstanceProfile"]
    shown = resource["InstanceDetails"]["IamInstanceProfile"]
    assert shown == {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert "GetInstanceProfile" not in operations(recorded[:-1])
    assert operations(recorded)[-1] == "GetInstanceProfile"


def test_a_deleted_profile_has_no_role_and_keeps_its_arn(
    recorded: list[Exchange],
) -> None:
    """Profile gone: IMDS has no keys and the finding names only the ARN."""
    launch(SCRIPT)
    (instance,) = workloads.running_instances(REGION)
    arn = instance.description["IamInstanceProfile"]["Arn"]
    iam = internal.client("iam", REGION)
    iam.remove_role_from_instance_profile(
        InstanceProfileName="Boot-Profile", RoleName="Boot-Role"
    )
    iam.delete_instance_profile(InstanceProfileName="Boot-Profile")

    assert instance_roles.instance_profile(arn) is None
    assert instance_roles.role_arn(instance) is None
    assert detector.instance_profile(arn) == {"Arn": arn}

"""The workloads found in user data: boot calls played, pings, and warnings."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from cfnlint.decode.decode import decode_str

from labkit.local import aws_cli, boot_calls, workloads

TEMPLATE = Path(__file__).parents[2] / "cfn" / "security-workshop.yaml"
MALICIOUS_IP = "198.51.100.7"


def user_data_of(logical_id: str) -> str:
    """The instance's user data as the engine would render it, ${...} filled."""
    decoded, problems = decode_str(TEMPLATE.read_text())
    assert problems == []
    body = json.loads(json.dumps(decoded))["Resources"][logical_id]
    script = body["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    values = {
        "AWS::Region": "eu-west-2",
        "CustomerTable": "Customer-Table",
        "MaliciousEip": MALICIOUS_IP,
    }
    return re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m[1], "x"), script)


def cli_calls(user_data: str) -> list[aws_cli.ApiCall]:
    """The API calls the aws-cli workload plays at boot, in order."""
    found = workloads.FINDERS["aws-cli"](user_data)
    assert all(isinstance(w, boot_calls.CliCalls) for w in found)
    return [
        s.call for w in found if isinstance(w, boot_calls.CliCalls) for s in w.steps
    ]


def pings(user_data: str) -> list[workloads.Ping]:
    """The pings the ping workload finds."""
    found = workloads.FINDERS["ping"](user_data)
    assert all(isinstance(w, workloads.Ping) for w in found)
    return [w for w in found if isinstance(w, workloads.Ping)]


def test_scenario_3_boot_calls_come_from_its_user_data() -> None:
    """The Scenario 3 instance writes the template's own value and item."""
    raw = TEMPLATE.read_text()
    value = re.search(r"--value '([^']*)'", raw)
    item = re.search(r"--item '([^']*)'", raw)
    assert value is not None and item is not None

    calls = cli_calls(user_data_of("Scenario3Instance"))

    assert [(c.service, c.operation, c.region) for c in calls] == [
        ("ssm", "PutParameter", "eu-west-2"),
        ("dynamodb", "PutItem", "eu-west-2"),
    ]
    assert calls[0].params == {
        "Name": "gd_prod_dbpwd_sample",
        "Type": "SecureString",
        "Value": value[1],
        "Overwrite": True,
    }
    assert calls[1].params == {
        "TableName": "Customer-Table",
        "Item": json.loads(item[1]),
    }


def test_boot_calls_follow_the_user_data_text() -> None:
    """Another value in the script is the value written: nothing is fixed in code."""
    script = user_data_of("Scenario3Instance")
    value = re.search(r"--value '([^']*)'", script)
    assert value is not None
    changed = script.replace(value[0], "--value 'Another-Fake-Value'")

    (put, _) = cli_calls(changed)
    assert put.params["Value"] == "Another-Fake-Value"


@pytest.mark.parametrize(
    "logical_id", ["Scenario1Instance", "MaliciousInstance", "ControlServer"]
)
def test_other_instances_make_no_boot_calls(logical_id: str) -> None:
    """Loops written to files for later, and aws configure, are no boot calls."""
    assert cli_calls(user_data_of(logical_id)) == []


def test_the_malicious_instances_repeated_calls_are_named_as_not_played(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its started script's looped aws calls are warned about, line by line."""
    script = user_data_of("MaliciousInstance")
    lines = script.splitlines()
    expected = [
        n
        for n, text in enumerate(lines, 1)
        if text.strip().startswith("aws ") and "configure" not in text
    ]
    assert len(expected) == 4
    with caplog.at_level(logging.WARNING, logger="labkit.local.boot_calls"):
        cli_calls(script + "\n# another text, so that it is read afresh\n")
    for number in expected:
        reason = "it is in a while loop (of /usr/local/bin/attacker-calls.sh"
        assert f"user data line {number} is not played locally: {reason}" in caplog.text


def test_the_scenario_1_ping_is_its_started_scripts_loop() -> None:
    """ping -c 10 then sleep 50, in a loop started by systemd-run: 10 a minute."""
    assert pings(user_data_of("Scenario1Instance")) == [
        workloads.Ping(MALICIOUS_IP, per_minute=10.0)
    ]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # Written to a file that is never started: no traffic.
        ("cat > /opt/p.sh <<'EOF'\nping -c 10 192.0.2.1\nEOF\n", []),
        # In a function nothing calls, or after exit: none.
        ("f() {\n  ping 192.0.2.1\n}\n", []),
        ("exit 0\nping -c 3 192.0.2.1\n", []),
        # Once at boot, its count; without -c it never ends, one a second.
        ("ping -c 3 192.0.2.1\n", [workloads.Ping("192.0.2.1", at_boot=3)]),
        ("nohup ping 192.0.2.1 &\n", [workloads.Ping("192.0.2.1", per_minute=60.0)]),
        # A loop without sleep pings all the time; -i spaces the packets.
        (
            "while true; do ping -c 5 -i 2 192.0.2.1; done &\n",
            [workloads.Ping("192.0.2.1", per_minute=30.0)],
        ),
        # A host name or an expansion is not resolved here.
        ("ping -c 1 example.com\nping -c 1 $IP\n", []),
    ],
)
def test_pings_are_found_where_they_run(
    script: str, expected: list[workloads.Ping]
) -> None:
    """A ping counts only where bash runs it, at the rate it runs."""
    assert pings(script) == expected


@pytest.mark.parametrize(
    ("script", "line", "reason"),
    [
        (
            "f() {\n  aws sts get-caller-identity\n}\n",
            2,
            "it is in the body of function f",
        ),
        (
            "while true; do aws sts get-caller-identity; done &\n",
            1,
            "it is in a while loop",
        ),
        ("(aws sts get-caller-identity)\n", 1, "it is in a ( ) subshell"),
        (
            "sudo aws sts get-caller-identity\n",
            1,
            "aws run through sudo is not supported",
        ),
        ("VAR=x aws sts get-caller-identity\n", 1, "it sets VAR for the CLI"),
        (
            "export AWS_PROFILE=p\naws sts get-caller-identity\n",
            2,
            "it sets AWS_PROFILE",
        ),
        ('aws ssm get-parameter --name "$NAME"\n', 1, "shell expansion"),
        ("aws s3 cp /tmp/a s3://b/a\n", 1, "the high-level 'aws s3' commands"),
        ("aws ssm put-parameter --name n\n", 1, "aws: error: the following arguments"),
    ],
)
def test_an_aws_command_not_played_is_named_with_its_reason(
    script: str, line: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every aws command left out is warned about, with its line and why."""
    with caplog.at_level(logging.WARNING, logger="labkit.local.boot_calls"):
        assert cli_calls(script) == []
    assert f"user data line {line} is not played locally: {reason}" in caplog.text


def test_what_runs_is_played_and_what_follows_exit_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """(cd x) && aws runs; a comment's backslash joins nothing; exit ends all."""
    script = "\n".join(
        [
            "#!/bin/bash",
            "f() { aws iam get-user; }",
            "# the caller \\",
            "aws sts get-caller-identity",
            'echo "see <<EOF"',
            "(cd /tmp) && aws ssm get-parameter --name=gd",
            "exit 0",
            "aws iam list-users",
        ]
    )
    with caplog.at_level(logging.INFO, logger="labkit.local.boot_calls"):
        calls = cli_calls(script)
    assert [(c.operation, c.params) for c in calls] == [
        ("GetCallerIdentity", {}),
        ("GetParameter", {"Name": "gd"}),
    ]
    assert (
        "line 8 is not played locally: it comes after the exit on line 7" in caplog.text
    )


def test_and_lists_and_set_e_are_kept_for_the_player() -> None:
    """Each step knows its && list and whether set -e ends the script after it."""
    script = (
        "set -e\naws sts get-caller-identity && aws iam get-user\naws iam list-users\n"
    )
    (found,) = workloads.FINDERS["aws-cli"](script)
    assert isinstance(found, boot_calls.CliCalls)
    first, second, third = found.steps
    assert first.chain == second.chain != third.chain
    assert [s.errexit for s in found.steps] == [False, True, True]

"""User data read as the commands it runs at boot, and those commands as API calls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode.decode import decode_str

from labkit.local import aws_cli, workloads
from labkit.local.shell_script import boot_commands

TEMPLATE = Path(__file__).parents[2] / "cfn" / "security-workshop.yaml"


def user_data_of(logical_id: str) -> str:
    """The instance's user data as the engine would render it, ${...} filled."""
    decoded, problems = decode_str(TEMPLATE.read_text())
    assert problems == []
    body = json.loads(json.dumps(decoded))["Resources"][logical_id]
    script = body["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    values = {"AWS::Region": "eu-west-2", "CustomerTable": "Customer-Table"}
    return re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m[1], "x"), script)


def cli_calls(user_data: str) -> list[aws_cli.ApiCall]:
    """The API calls the aws-cli workload finds in a script."""
    found = workloads.FINDERS["aws-cli"](user_data)
    assert all(isinstance(w, workloads.CliCall) for w in found)
    return [w.call for w in found if isinstance(w, workloads.CliCall)]


def test_boot_commands_skip_heredocs_loops_and_comments() -> None:
    """Only top-level commands run once; a here-document's body is only text."""
    script = "\n".join(
        [
            "#!/bin/bash",
            "echo one  # a comment",
            "cat > /tmp/s.sh <<'EOF'",
            "aws iam get-user",
            "EOF",
            "while true; do",
            "  aws sts get-caller-identity",
            "done",
            "for i in 1 2; do aws s3api list-buckets; done",
            "if true; then aws ssm get-parameter --name a; fi",
            "echo two && echo three | tr a b 2>/dev/null",
        ]
    )
    words = [c.words for c in boot_commands(script)]
    assert words == [
        ("echo", "one"),
        ("cat",),
        ("echo", "two"),
        ("echo", "three"),
        ("tr", "a", "b"),
    ]


def test_boot_commands_join_continued_lines_and_unquote() -> None:
    """A backslash-newline joins lines; quotes go, the words inside stay whole."""
    script = "aws ssm put-parameter --name n \\\n  --value 'a b \"c\"' --overwrite\n"
    (command,) = boot_commands(script)
    assert command.words == (
        "aws",
        "ssm",
        "put-parameter",
        "--name",
        "n",
        "--value",
        'a b "c"',
        "--overwrite",
    )
    assert command.line == 1 and not command.expands


@pytest.mark.parametrize(
    ("line", "expands"),
    [
        ("echo '$HOME'", False),
        ('echo "$HOME"', True),
        ("echo `date`", True),
        ("echo \\$HOME", False),
        ('echo "it\'s" $(id)', True),
    ],
)
def test_boot_commands_mark_shell_expansion(line: str, expands: bool) -> None:
    """A $ or backquote outside single quotes is expansion the reader does not do."""
    (command,) = boot_commands(line)
    assert command.expands is expands


def test_read_command_maps_options_to_members() -> None:
    """Options become members by botocore's names; switches are booleans."""
    call = aws_cli.read_command(
        (
            "aws",
            "ssm",
            "put-parameter",
            "--name",
            "n",
            "--type",
            "SecureString",
            "--value",
            "v",
            "--no-overwrite",
            "--region",
            "eu-west-1",
            "--output",
            "json",
        )
    )
    assert call == aws_cli.ApiCall(
        "ssm",
        "PutParameter",
        {"Name": "n", "Type": "SecureString", "Value": "v", "Overwrite": False},
        "eu-west-1",
    )
    assert call.method == "put_parameter"


def test_read_command_reads_lists_and_json() -> None:
    """A list of strings is several words; a map is JSON; no --region is None."""
    names = aws_cli.read_command(
        ("aws", "ssm", "get-parameters", "--names", "a", "b", "--with-decryption")
    )
    assert names is not None
    assert names.params == {"Names": ["a", "b"], "WithDecryption": True}
    assert names.region is None

    item = aws_cli.read_command(
        (
            "aws",
            "dynamodb",
            "put-item",
            "--table-name",
            "T",
            "--item",
            '{"k": {"S": "v"}}',
        )
    )
    assert item is not None
    assert item.params == {"TableName": "T", "Item": {"k": {"S": "v"}}}


def test_read_command_skips_local_only_commands() -> None:
    """aws configure writes the machine's files and calls no API."""
    words = ("aws", "configure", "set", "profile.x.region", "eu-west-2")
    assert aws_cli.read_command(words) is None


@pytest.mark.parametrize(
    ("words", "error", "match"),
    [
        (("aws", "ssm", "put-parameter", "--nme", "n"), aws_cli.CliUsageError, "--nme"),
        (
            ("aws", "ssm", "put-parameter", "--name", "n"),
            aws_cli.CliUsageError,
            "--value",
        ),
        (("aws", "ssm", "get-parameter", "n"), aws_cli.CliUsageError, "'n'"),
        (
            ("aws", "dynamodb", "put-item", "--table-name", "T", "--item", "k={S=v}"),
            NotImplementedError,
            "shorthand",
        ),
        (("aws", "s3", "cp", "a", "b"), NotImplementedError, "s3api"),
        (
            ("aws", "ssm", "get-parameter", "--name", "n", "--profile", "p"),
            NotImplementedError,
            "--profile",
        ),
        (("aws", "rds", "describe-db-instances"), NotImplementedError, "rds"),
        (("aws", "logs", "tail", "g"), NotImplementedError, "not one operation"),
    ],
)
def test_read_command_refuses_what_it_cannot_read(
    words: tuple[str, ...], error: type[Exception], match: str
) -> None:
    """A wrong command is named as the CLI would; an unsupported form says so."""
    with pytest.raises(error, match=match):
        aws_cli.read_command(words)


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


def test_unplayable_boot_command_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command the reader cannot play is named in the log and the rest still run."""
    script = 'aws ssm get-parameter --name "$NAME"\naws sts get-caller-identity\n'
    calls = cli_calls(script)
    assert [c.operation for c in calls] == ["GetCallerIdentity"]
    assert "line 1 is not played locally: shell expansion" in caplog.text

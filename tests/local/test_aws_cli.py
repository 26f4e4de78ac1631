"""aws command lines read by the AWS CLI's own parser, as the calls they make."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.paginate import TokenEncoder

from labkit.local import aws_cli


def read(*words: str) -> aws_cli.ApiCall:
    """The call of ``aws WORDS``, which must be one."""
    call = aws_cli.read_command(("aws", *words))
    assert call is not None
    return call


def test_options_become_members_as_the_cli_names_them() -> None:
    """Switches are booleans; --name=value is one word; --region is kept."""
    call = read(
        "ssm",
        "put-parameter",
        "--name=gd",
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
    assert call == aws_cli.ApiCall(
        "ssm",
        "PutParameter",
        {"Name": "gd", "Type": "SecureString", "Value": "v", "Overwrite": False},
        "eu-west-1",
    )
    assert call.method == "put_parameter"


def test_lists_json_and_shorthand_syntax() -> None:
    """A list is several words; a structure is JSON or the CLI's shorthand."""
    names = read("ssm", "get-parameters", "--names", "a", "b", "--with-decryption")
    assert names.params == {"Names": ["a", "b"], "WithDecryption": True}
    assert names.region is None

    as_json = read(
        "dynamodb", "put-item", "--table-name", "T", "--item", '{"k": {"S": "v"}}'
    )
    shorthand = read("dynamodb", "put-item", "--table-name", "T", "--item", "k={S=v}")
    assert (
        as_json.params
        == shorthand.params
        == {"TableName": "T", "Item": {"k": {"S": "v"}}}
    )

    filters = read("ec2", "describe-instances", "--filters", "Name=tag:Name,Values=a,b")
    assert filters.params == {"Filters": [{"Name": "tag:Name", "Values": ["a", "b"]}]}


def test_the_clis_own_options_and_paging() -> None:
    """--count is the CLI's option for Min/MaxCount; paging reads as the first page."""
    launch = read("ec2", "run-instances", "--image-id", "ami-1", "--count", "2")
    assert launch.params == {"ImageId": "ami-1", "MinCount": 2, "MaxCount": 2}

    token = TokenEncoder().encode({"ExclusiveStartTableName": "Table-1"})
    page = read(
        "dynamodb",
        "list-tables",
        "--max-items",
        "5",
        "--page-size",
        "2",
        "--starting-token",
        token,
    )
    assert page.params == {"Limit": 2, "ExclusiveStartTableName": "Table-1"}

    unchecked = read("--no-verify-ssl", "sts", "get-caller-identity", "--no-paginate")
    assert (unchecked.service, unchecked.operation) == ("sts", "GetCallerIdentity")


def test_cli_input_json_and_service_renames() -> None:
    """--cli-input-json fills members; s3api and configservice are s3 and config."""
    put = read(
        "ssm", "put-parameter", "--cli-input-json", '{"Name": "a", "Value": "b"}'
    )
    assert put.params == {"Name": "a", "Value": "b"}
    assert read("s3api", "list-buckets").service == "s3"
    assert read("configservice", "describe-config-rules").service == "config"


@pytest.mark.parametrize(
    "words",
    [
        ("configure", "set", "profile.x.region", "eu-west-2"),
        ("ssm", "help"),
        ("--version",),
    ],
)
def test_commands_that_call_no_api(words: tuple[str, ...]) -> None:
    """aws configure, help and --version make no call."""
    assert aws_cli.read_command(("aws", *words)) is None


@pytest.mark.parametrize(
    ("words", "match"),
    [
        (
            ("ssm", "put-parameter", "--name", "n", "--value", "v", "--nme", "x"),
            "Unknown options: --nme, x",
        ),
        (("ssm", "put-parameter", "--name", "n"), "required: --value"),
        (("ssm", "get-parameter", "--name", "n", "--region"), "--region"),
        (("dynamodb", "list-tables", "--limit", "many"), "invalid literal for int"),
        (("ssm", "get-paramter", "--name", "n"), "Invalid choice; maybe you meant"),
    ],
)
def test_what_the_cli_refuses_is_refused_with_its_message(
    words: tuple[str, ...], match: str
) -> None:
    """Unknown options, missing or malformed values: the CLI's own error."""
    with pytest.raises(aws_cli.CliUsageError, match=match):
        aws_cli.read_command(("aws", *words))


@pytest.mark.parametrize(
    ("words", "match"),
    [
        (("s3", "cp", "a", "s3://b/a"), "use 'aws s3api'"),
        (("rds", "describe-db-instances"), "aws rds is not supported"),
        (("ec2", "wait", "instance-running"), "not one API operation"),
        (("dynamodb", "wait", "table-exists", "--table-name", "T-1"), "not one API"),
        (("ssm", "get-parameter", "--name", "n", "--profile", "p"), "--profile"),
        (
            ("--endpoint-url", "http://x", "sts", "get-caller-identity"),
            "--endpoint-url",
        ),
        (("--no-sign-request", "sts", "get-caller-identity"), "--no-sign-request"),
    ],
)
def test_forms_the_local_cloud_does_not_play_say_so(
    words: tuple[str, ...], match: str
) -> None:
    """High-level s3, waiters, other services and profiles are named as unsupported."""
    with pytest.raises(NotImplementedError, match=match):
        aws_cli.read_command(("aws", *words))


@pytest.mark.parametrize("prefix", ["file://", "fileb://"])
def test_file_values_are_refused_and_not_read(tmp_path: Path, prefix: str) -> None:
    """The file is on the instance: a local file of that name is never read."""
    here = tmp_path / "item.json"
    here.write_text('{"k": {"S": "from-the-laptop"}}')
    words = (
        "aws",
        "dynamodb",
        "put-item",
        "--table-name",
        "T",
        "--item",
        prefix + str(here),
    )
    with pytest.raises(NotImplementedError, match=f"--item: {prefix} values are not"):
        aws_cli.read_command(words)


@pytest.fixture
def web_hits() -> Iterator[tuple[str, list[str]]]:
    """A loopback web server; the paths it was asked for."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"fetched")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/value", hits
    server.shutdown()


def test_url_values_stay_text_as_cli_v2_keeps_them(
    web_hits: tuple[str, list[str]],
) -> None:
    """CLI v1 would fetch an http:// value; the instance's CLI v2 does not."""
    url, hits = web_hits
    assert read("ssm", "get-parameter", "--name", url).params == {"Name": url}
    assert hits == []


def test_the_users_own_aws_settings_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config, profile, region and alias of the user's change nothing."""
    aws = tmp_path / "home" / ".aws"
    (aws / "cli").mkdir(parents=True)
    (aws / "config").write_text("[default]\nregion = ap-south-1\n")
    (aws / "cli" / "alias").write_text("[toplevel]\nwhoami = sts get-caller-identity\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws / "config"))
    monkeypatch.setenv("AWS_PROFILE", "nobody")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    before = dict(os.environ)

    assert read("sts", "get-caller-identity").region is None
    with pytest.raises(aws_cli.CliUsageError, match="Invalid choice"):
        aws_cli.read_command(("aws", "whoami"))
    assert dict(os.environ) == before


def test_read_commands_keeps_the_order_and_gives_errors_as_values() -> None:
    """One run of the CLI's process reads many commands, each on its own."""
    readings = aws_cli.read_commands(
        [
            ("aws", "sts", "get-caller-identity"),
            ("aws", "s3", "ls"),
            ("/usr/bin/aws", "configure", "list"),
            ("aws", "ssm", "get-parameter"),
        ]
    )
    assert isinstance(readings[0], aws_cli.ApiCall)
    assert isinstance(readings[1], NotImplementedError)
    assert readings[2] is None
    assert isinstance(readings[3], aws_cli.CliUsageError)


def test_a_command_that_is_not_aws_is_refused() -> None:
    """Only aws command lines are read; the error says what was given."""
    with pytest.raises(aws_cli.CliUsageError, match="'sudo aws sts'"):
        aws_cli.read_commands([("sudo", "aws", "sts", "get-caller-identity")])

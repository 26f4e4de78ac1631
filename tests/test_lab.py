"""Tests of labkit.lab: choosing the mode, clients, the lab clock."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from labkit import lab as lab_module
from labkit.errors import ConfigError, LabError
from labkit.lab import Lab, connect
from labkit.local import control, server, settings

ENDPOINT = "http://127.0.0.1:4599"


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """Stand in for the local cloud: record the ports asked for."""
    ports: list[int | None] = []

    def ensure_running(*, port: int | None = None) -> str:
        ports.append(port)
        return ENDPOINT

    monkeypatch.setattr(server, "ensure_running", ensure_running)
    return ports


def test_connect_unknown_mode_raises_config_error() -> None:
    """An unknown mode names the value, the allowed modes and how to set one."""
    with pytest.raises(ConfigError) as caught:
        connect("cloud")
    message = str(caught.value)
    assert "'cloud'" in message
    assert "'local'" in message and "'aws'" in message
    assert "LABKIT_MODE" in message
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, LabError)


def test_connect_unknown_mode_from_environment_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad LABKIT_MODE is reported with its value."""
    monkeypatch.setenv("LABKIT_MODE", "staging")
    with pytest.raises(ConfigError, match="'staging'"):
        connect()


def test_connect_defaults_to_local(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """Without a mode or LABKIT_MODE the lab runs on the local cloud."""
    monkeypatch.delenv("LABKIT_MODE", raising=False)
    lab = connect(port=4601)
    assert lab.mode == "local"
    assert lab.endpoint_url == ENDPOINT
    assert lab.region == "eu-west-2"
    assert lab.stack_name == "Security-Workshop"
    assert fake_server == [4601]


def test_connect_reads_mode_from_environment(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """LABKIT_MODE=aws gives an aws lab and starts no local cloud."""
    monkeypatch.setenv("LABKIT_MODE", "aws")
    lab = connect(region="eu-west-1")
    assert lab.mode == "aws"
    assert lab.region == "eu-west-1"
    assert lab.endpoint_url is None
    assert fake_server == []


def test_connect_aws_takes_region_from_aws_region(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """In aws mode AWS_REGION chooses the region, as for the aws CLI."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert connect("aws").region == "us-east-1"
    monkeypatch.delenv("AWS_REGION")
    assert connect("aws").region == "eu-west-1"


def test_connect_labkit_region_wins_over_aws_region(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """LABKIT_REGION applies in both modes and comes before AWS_REGION."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("LABKIT_REGION", "eu-central-1")
    assert connect("aws").region == "eu-central-1"
    assert connect("aws", region="ap-south-1").region == "ap-south-1"
    assert connect("local").region == "eu-central-1"


def test_connect_local_ignores_aws_region(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """A student's usual AWS_REGION does not move the local lab."""
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert connect("local").region == "eu-west-2"


def test_connect_unknown_region_names_it_and_its_source(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """A misspelt region is refused with its value and where it came from."""
    monkeypatch.setenv("AWS_REGION", "eu-west2")
    with pytest.raises(ConfigError) as caught:
        connect("aws")
    message = str(caught.value)
    assert "'eu-west2'" in message and "AWS_REGION" in message
    assert "'eu-west-2'" in message
    with pytest.raises(ConfigError, match="'mars-1'.*from the region argument"):
        connect("local", region="mars-1")


@pytest.mark.parametrize("name", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_GUARDDUTY"])
@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:4599", "http://localhost:4599/", "http://[::1]:80"]
)
def test_connect_aws_refuses_loopback_endpoint(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """aws mode never quietly reaches the local cloud through AWS_ENDPOINT_URL."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        connect("aws")
    assert name in str(caught.value) and "unset" in str(caught.value)


def test_connect_aws_accepts_a_remote_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint beyond this machine (a VPC endpoint, say) is the user's choice."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "https://sts.eu-west-2.amazonaws.com")
    assert connect("aws").mode == "aws"


def test_connect_local_with_profile_raises_config_error(
    fake_server: list[int | None],
) -> None:
    """A profile makes no sense locally and is refused, naming it."""
    with pytest.raises(ConfigError, match="'student'"):
        connect("local", profile="student")


def test_connect_aws_with_port_raises_config_error() -> None:
    """A port makes no sense in aws mode and is refused, naming it."""
    with pytest.raises(ConfigError, match="4601"):
        connect("aws", port=4601)


def test_client_local_aims_at_endpoint_with_lab_key(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """Local clients use the endpoint and the lab's key, ignoring AWS_PROFILE."""
    monkeypatch.setenv("AWS_PROFILE", "profile-that-does-not-exist")
    lab = connect("local")
    sqs = lab.client("sqs")
    assert sqs.meta.endpoint_url == ENDPOINT
    assert sqs.meta.region_name == "eu-west-2"
    credentials = sqs._request_signer._credentials
    assert credentials.access_key == settings.LOCAL_ACCESS_KEY_ID
    assert lab.client("sqs") is sqs


def test_lab_local_without_endpoint_raises_config_error() -> None:
    """A local Lab built by hand must be given the endpoint."""
    with pytest.raises(ConfigError, match="endpoint_url"):
        Lab("local")


def test_account_id_is_read_once() -> None:
    """account_id calls GetCallerIdentity once and then caches it."""
    lab = Lab("aws", session=boto3.Session(region_name="eu-west-2"))
    stubber = Stubber(lab.client("sts"))
    stubber.add_response(
        "get_caller_identity",
        {"Account": "111122223333", "Arn": "arn:aws:iam::111122223333:user/a"},
    )
    with stubber:
        assert lab.account_id == "111122223333"
        assert lab.account_id == "111122223333"
    stubber.assert_no_pending_responses()


def test_advance_local_moves_the_lab_clock(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """Locally, advance asks the local cloud to move its clock."""
    calls: list[tuple[str, float]] = []
    monkeypatch.setattr(
        control, "advance", lambda url, minutes: calls.append((url, minutes)) or {}
    )
    connect("local").advance(12.5)
    assert calls == [(ENDPOINT, 12.5)]


def test_advance_aws_sleeps_real_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    """In aws mode, advance waits for real: minutes times sixty seconds."""
    slept: list[float] = []
    monkeypatch.setattr(lab_module.time, "sleep", slept.append)
    Lab("aws", session=boto3.Session(region_name="eu-west-2")).advance(2)
    assert slept == [120]


def test_advance_negative_raises_config_error(
    fake_server: list[int | None],
) -> None:
    """Lab time never moves backwards."""
    with pytest.raises(ConfigError, match="-1"):
        connect("local").advance(-1)


def test_now_local_reads_the_lab_clock(
    monkeypatch: pytest.MonkeyPatch, fake_server: list[int | None]
) -> None:
    """Locally, now() is the local cloud's lab time."""
    lab_time = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    monkeypatch.setattr(control, "now", lambda url: lab_time)
    assert connect("local").now() == lab_time


def test_now_aws_is_current_utc() -> None:
    """In aws mode, now() is the real time in UTC."""
    before = datetime.now(UTC)
    now = Lab("aws", session=boto3.Session(region_name="eu-west-2")).now()
    assert now.tzinfo is not None
    assert before <= now <= datetime.now(UTC)


def test_client_with_a_misspelt_service_names_the_nearest(
    fake_server: list[int | None],
) -> None:
    """A misspelt service gets a short error with the real name, not botocore's list."""
    lab = connect("local")
    with pytest.raises(ConfigError) as caught:
        lab.client("guarduty")
    message = str(caught.value)
    assert "'guarduty'" in message and "did you mean 'guardduty'" in message
    assert len(message) < 300


@pytest.mark.parametrize("minutes", ["5", None, True])
def test_advance_refuses_what_is_not_a_number(
    fake_server: list[int | None], minutes: object
) -> None:
    """lab.advance("5") is refused in words, before anything moves."""
    lab = connect("local")
    with pytest.raises(ConfigError, match=f"minutes must be a number, got {minutes!r}"):
        lab.advance(minutes)  # type: ignore[arg-type]

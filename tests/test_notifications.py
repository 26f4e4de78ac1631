"""Tests of labkit.notifications: reading the lab inbox without consuming it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from labkit.errors import ConfigError
from labkit.lab import Lab
from labkit.notifications import COLUMNS, format_email, read_inbox


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A plain moto server on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{server._server.server_port}"
    server.stop()


@pytest.fixture
def inbox(moto_url: str) -> tuple[Lab, str, dict[str, str]]:
    """A lab, its inbox queue, and two topics subscribed to it."""
    reset = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    lab = Lab("local", endpoint_url=moto_url)
    sqs, sns = lab.client("sqs"), lab.client("sns")
    queue_url = sqs.create_queue(QueueName="lab-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    topics = {}
    for name in ("Security-Workshop-GuardDuty", "Security-Workshop-Config"):
        topics[name] = sns.create_topic(Name=name)["TopicArn"]
        sns.subscribe(
            TopicArn=topics[name],
            Protocol="sqs",
            Endpoint=arn["Attributes"]["QueueArn"],
        )
    return lab, queue_url, topics


def test_read_inbox_keeps_quotes_and_names_topics(
    inbox: tuple[Lab, str, dict[str, str]],
) -> None:
    """A transformed string arrives with its quotes, under its topic's name."""
    lab, queue_url, topics = inbox
    text = '"GuardDuty Finding | ID: abc123: instance i-0aaa may be compromised"'
    lab.client("sns").publish(
        TopicArn=topics["Security-Workshop-GuardDuty"],
        Message=text,
        Subject="GuardDuty Finding",
    )

    frame = read_inbox(lab, queue_url)

    assert list(frame.columns) == COLUMNS
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["message"] == text
    assert row["message"].startswith('"') and row["message"].endswith('"')
    assert row["topic"] == "Security-Workshop-GuardDuty"
    assert row["subject"] == "GuardDuty Finding"
    assert str(frame["received_at"].dt.tz) == "UTC"


def test_read_inbox_twice_gives_the_same_rows(
    inbox: tuple[Lab, str, dict[str, str]],
) -> None:
    """Reading does not consume: more than ten messages come back on every read."""
    lab, queue_url, topics = inbox
    sns = lab.client("sns")
    for n in range(12):
        topic = "Security-Workshop-GuardDuty" if n % 2 else "Security-Workshop-Config"
        sns.publish(TopicArn=topics[topic], Message=f'"alert {n}"')

    first = read_inbox(lab, queue_url)
    second = read_inbox(lab, queue_url)

    assert len(first) == 12
    assert first["message_id"].is_unique
    pd.testing.assert_frame_equal(first, second)
    assert sorted(first["message"]) == sorted(f'"alert {n}"' for n in range(12))
    assert set(first["topic"]) == set(topics)
    assert first["received_at"].is_monotonic_increasing
    # Published without a subject: the row shows SNS's default, as e-mail does.
    assert set(first["subject"]) == {"AWS Notification Message"}


def test_read_inbox_empty_queue_gives_empty_frame(
    inbox: tuple[Lab, str, dict[str, str]],
) -> None:
    """An empty inbox is an empty frame with the documented columns."""
    lab, queue_url, _ = inbox
    frame = read_inbox(lab, queue_url)
    assert frame.empty
    assert list(frame.columns) == COLUMNS


def test_read_inbox_keeps_a_body_not_from_sns(
    inbox: tuple[Lab, str, dict[str, str]],
) -> None:
    """A message sent straight to the queue is shown as is, with no topic."""
    lab, queue_url, _ = inbox
    lab.client("sqs").send_message(QueueUrl=queue_url, MessageBody="plain text")
    frame = read_inbox(lab, queue_url)
    assert frame["message"].tolist() == ["plain text"]
    assert frame["topic"].isna().all()
    assert frame["received_at"].notna().all()


def test_read_inbox_orders_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are sorted by the time SNS sent them, whatever the queue order."""

    class FakeSqs:
        calls = 0
        released = 0

        def receive_message(self, **kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls > 1:
                return {}
            return {"Messages": [_message("m2", "12:05"), _message("m1", "12:00")]}

        def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
            self.released += len(kwargs["Entries"])
            return {"Successful": [], "Failed": []}

    fake = FakeSqs()
    lab = Lab("local", endpoint_url="http://127.0.0.1:1")
    monkeypatch.setattr(lab, "client", lambda service: fake)
    frame = read_inbox(lab, "queue")
    assert frame["message_id"].tolist() == ["sns-m1", "sns-m2"]
    assert fake.released == 2


def _message(mid: str, clock: str) -> dict[str, Any]:
    envelope = {
        "Type": "Notification",
        "MessageId": f"sns-{mid}",
        "TopicArn": "arn:aws:sns:eu-west-2:123456789012:Security-Workshop-Config",
        "Message": "x",
        "Timestamp": f"2030-01-01T{clock}:00.000Z",
    }
    return {"MessageId": mid, "ReceiptHandle": f"h-{mid}", "Body": json.dumps(envelope)}


def test_format_email_shows_from_subject_and_body() -> None:
    """An inbox row renders as a short e-mail with sender, subject and body."""
    row = {
        "received_at": pd.Timestamp("2030-01-01T12:00:00Z"),
        "topic": "Security-Workshop-GuardDuty",
        "subject": "GuardDuty Remediation",
        "message": '"Instance i-0aaa was isolated"',
        "message_id": "m1",
    }
    text = format_email(row)
    lines = text.splitlines()
    assert lines[0] == "From: AWS Notifications <no-reply@sns.amazonaws.com>"
    assert "Date: Tue, 01 Jan 2030 12:00:00 +0000" in lines
    assert "Subject: GuardDuty Remediation" in lines
    assert lines[-1] == '"Instance i-0aaa was isolated"'


def test_format_email_without_subject_uses_sns_default() -> None:
    """With no subject, the e-mail shows SNS's default subject line."""
    text = format_email(pd.Series({"subject": None, "message": "{}"}))
    assert "Subject: AWS Notification Message" in text.splitlines()
    assert "Date:" not in text


@pytest.mark.parametrize("given", [pd.DataFrame({"subject": ["s"]}), "hello", 3])
def test_format_email_refuses_what_is_not_a_row(given: object) -> None:
    """A whole inbox, or no row at all, is refused with how to pick one row."""
    with pytest.raises(ConfigError, match=r"one inbox row.*inbox\.iloc\[0\]"):
        format_email(given)  # type: ignore[arg-type]

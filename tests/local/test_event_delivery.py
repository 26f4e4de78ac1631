"""EventBridge delivery on the real local cloud: rules, transformers, targets."""

from __future__ import annotations

import json
from typing import Any

import pytest

import labkit
from labkit.lab import Lab


@pytest.fixture(scope="module")
def lab(local_cloud: str) -> Lab:
    """A lab on the session's local cloud."""
    return labkit.connect()


def _queue(lab: Lab, name: str) -> tuple[str, str]:
    sqs = lab.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def _bodies(lab: Lab, url: str) -> list[str]:
    answer = lab.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [message["Body"] for message in answer.get("Messages", [])]


def _rule(lab: Lab, name: str, pattern: dict[str, Any], target: dict[str, Any]) -> None:
    events = lab.client("events")
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[target])


def _send(lab: Lab, detail: dict[str, Any], source: str = "lab.orders") -> None:
    entry = {"Source": source, "DetailType": "Order", "Detail": json.dumps(detail)}
    sent = lab.client("events").put_events(Entries=[entry])
    assert sent["FailedEntryCount"] == 0


def test_sqs_target_gets_the_json_template_output(lab: Lab) -> None:
    """A JSON input template reaches an SQS target as valid, typed JSON."""
    url, arn = _queue(lab, "delivery-json")
    transformer = {
        "InputPathsMap": {"item": "$.detail.item", "n": "$.detail.count"},
        "InputTemplate": '{"item": <item>, "n": <n>, "rule": "<aws.events.rule-name>"}',
    }
    pattern = {"source": ["lab.orders"], "detail": {"count": [{"numeric": [">=", 2]}]}}
    _rule(
        lab,
        "delivery-json",
        pattern,
        {"Id": "q", "Arn": arn, "InputTransformer": transformer},
    )

    _send(lab, {"item": "disk", "count": 3})
    _send(lab, {"item": "cable", "count": 1})

    bodies = _bodies(lab, url)
    assert [json.loads(body) for body in bodies] == [
        {"item": "disk", "n": 3, "rule": "delivery-json"}
    ]


def test_whole_event_without_transformer(lab: Lab) -> None:
    """With no input settings the target receives the whole event."""
    url, arn = _queue(lab, "delivery-whole")
    _rule(lab, "delivery-whole", {"source": ["lab.whole"]}, {"Id": "q", "Arn": arn})

    _send(lab, {"k": "v"}, source="lab.whole")

    (body,) = _bodies(lab, url)
    event = json.loads(body)
    assert event["source"] == "lab.whole"
    assert event["detail"] == {"k": "v"}
    assert event["account"] == lab.account_id and event["region"] == lab.region


def test_disabled_rule_delivers_nothing(lab: Lab) -> None:
    """A disabled rule matches nothing."""
    url, arn = _queue(lab, "delivery-off")
    _rule(lab, "delivery-off", {"source": ["lab.off"]}, {"Id": "q", "Arn": arn})
    lab.client("events").disable_rule(Name="delivery-off")

    _send(lab, {}, source="lab.off")

    assert _bodies(lab, url) == []


def test_aws_sources_are_refused_to_callers(lab: Lab) -> None:
    """Only AWS services may put aws.* events, as in AWS."""
    entry = {
        "Source": "aws.guardduty",
        "DetailType": "GuardDuty Finding",
        "Detail": "{}",
    }
    answer = lab.client("events").put_events(Entries=[entry])
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0]["ErrorCode"] == "NotAuthorizedForSourceException"

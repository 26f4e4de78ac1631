"""EventBridge on the real local cloud: rules, transformers, targets, tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import labkit
from labkit import rules
from labkit.lab import Lab
from labkit.local import server


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


def _missing_topic(lab: Lab) -> dict[str, Any]:
    return {"Arn": f"arn:aws:sns:{lab.region}:{lab.account_id}:delivery-no-topic"}


def _deleted_queue(lab: Lab) -> dict[str, Any]:
    url, arn = _queue(lab, "delivery-deleted")
    lab.client("sqs").delete_queue(QueueUrl=url)
    return {"Arn": arn}


def _deleted_function(lab: Lab) -> dict[str, Any]:
    arn = f"arn:aws:lambda:{lab.region}:{lab.account_id}:function:delivery-no-fn"
    return {"Arn": arn}


def _text_to_function(lab: Lab, function_arn: str) -> dict[str, Any]:
    transformer = {
        "InputPathsMap": {"item": "$.detail.item"},
        "InputTemplate": "order of <item>",
    }
    return {"Arn": function_arn, "InputTransformer": transformer}


# The error code each kind of failure is logged with, as botocore reports it
# from AWS: SQS answers QueueDoesNotExist over JSON, with the query-compatible
# header that botocore turns back into the legacy code below.
REASON_CODES = {
    "topic": "NotFound",
    "queue": "AWS.SimpleQueueService.NonExistentQueue",
    "function": "ResourceNotFoundException",
    "text": "InvalidRequestContentException",
}
BAD_TARGETS = tuple(REASON_CODES)


@pytest.fixture(scope="module")
def bad_targets(
    lab: Lab, make_echo_function: Callable[[Lab, str], str]
) -> dict[str, dict[str, Any]]:
    """One target of each kind that cannot take an event, made once."""
    made = {
        "topic": _missing_topic(lab),
        "queue": _deleted_queue(lab),
        "function": _deleted_function(lab),
        "text": _text_to_function(lab, make_echo_function(lab, "delivery-text")),
    }
    return {kind: {"Id": "bad", **target} for kind, target in made.items()}


def _log_text() -> str:
    return Path(server.status()["log"]).read_text(errors="replace")


@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-first", "bad-last"])
@pytest.mark.parametrize("kind", sorted(BAD_TARGETS))
def test_a_failing_target_does_not_stop_the_others(
    lab: Lab, bad_targets: dict[str, dict[str, Any]], kind: str, bad_first: bool
) -> None:
    """PutEvents succeeds, the queue gets one copy; the log names event and code."""
    name = f"delivery-{kind}-{'first' if bad_first else 'last'}"
    url, arn = _queue(lab, name)
    good = {"Id": "q", "Arn": arn}
    bad = bad_targets[kind]
    events = lab.client("events")
    events.put_rule(Name=name, EventPattern=json.dumps({"source": [f"lab.{name}"]}))
    targets = [bad, good] if bad_first else [good, bad]
    events.put_targets(Rule=name, Targets=targets)

    entry = {"Source": f"lab.{name}", "DetailType": "Order", "Detail": '{"item": 1}'}
    sent = events.put_events(Entries=[entry])

    assert sent["FailedEntryCount"] == 0
    (answer,) = sent["Entries"]
    (body,) = _bodies(lab, url)
    assert json.loads(body)["id"] == answer["EventId"]
    warning = (
        f"rule {name} target bad ({bad['Arn']}): "
        f"event {answer['EventId']} not delivered: {REASON_CODES[kind]}: "
    )
    assert warning in _log_text()


def test_a_finding_reaches_working_targets_during_advance(fresh_cloud: str) -> None:
    """A finding published by the lab clock skips a broken target, not the rest."""
    lab = labkit.connect()
    url, arn = _queue(lab, "delivery-finding")
    pattern = {"source": ["aws.guardduty"], "detail": {"type": ["Recon:EC2/Portscan"]}}
    targets = [{"Id": "gone", **_missing_topic(lab)}, {"Id": "q", "Arn": arn}]
    events = lab.client("events")
    events.put_rule(Name="delivery-finding", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="delivery-finding", Targets=targets)
    guardduty = lab.client("guardduty")
    detector = guardduty.create_detector(Enable=True)["DetectorId"]
    try:
        guardduty.create_sample_findings(
            DetectorId=detector, FindingTypes=["Recon:EC2/Portscan"]
        )
        lab.advance(1)
        (body,) = _bodies(lab, url)
    finally:
        guardduty.delete_detector(DetectorId=detector)

    event = json.loads(body)
    assert event["source"] == "aws.guardduty"
    assert event["detail-type"] == "GuardDuty Finding"
    assert event["detail"]["type"] == "Recon:EC2/Portscan"
    warning = (
        f"rule delivery-finding target gone ({targets[0]['Arn']}): "
        f"event {event['id']} not delivered: NotFound: "
    )
    assert warning in _log_text()


def _event(lab: Lab) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "1",
        "detail-type": "Order",
        "source": "lab.tests",
        "account": lab.account_id,
        "time": "2026-01-01T00:00:00Z",
        "region": lab.region,
        "resources": [],
        "detail": {},
    }


def _test_pattern(lab: Lab, event: Any) -> bool:
    answer = lab.client("events").test_event_pattern(
        EventPattern=json.dumps({"source": ["lab.tests"]}), Event=json.dumps(event)
    )
    return bool(answer["Result"])


@pytest.mark.parametrize(
    "field", ["id", "account", "source", "time", "region", "detail-type"]
)
def test_event_pattern_refuses_an_event_missing_a_mandatory_field(
    lab: Lab, field: str
) -> None:
    """TestEventPattern answers ValidationException, as AWS does."""
    event = _event(lab)
    del event[field]

    with pytest.raises(ClientError) as refused:
        _test_pattern(lab, event)

    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("Parameter Event is not valid. Reason: ")
    assert f"missing {field};" in error["Message"]


@pytest.mark.parametrize(
    ("event", "kind"), [(["id"], "array"), ("id account", "string"), (1, "number")]
)
def test_event_pattern_refuses_an_event_that_is_not_an_object(
    lab: Lab, event: Any, kind: str
) -> None:
    """A JSON array, string or number is not an event."""
    with pytest.raises(ClientError) as refused:
        _test_pattern(lab, event)

    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        "Parameter Event is not valid. "
        f"Reason: the event must be a JSON object, got a JSON {kind}"
    )


def test_event_pattern_accepts_an_event_without_resources(lab: Lab) -> None:
    """AWS matches an event with no resources, though its reference lists them."""
    event = _event(lab)
    del event["resources"]

    assert _test_pattern(lab, event) is True


def test_guardduty_event_has_every_field_the_reference_lists(lab: Lab) -> None:
    """rules.pattern_matches sends the seven fields, resources included."""
    event = rules.guardduty_event(lab, {"type": "Recon:EC2/Portscan"})

    listed = {"id", "account", "source", "time", "region", "resources", "detail-type"}
    assert listed <= set(event)
    assert event["resources"] == []
    assert _test_pattern(lab, {**event, "source": "lab.tests"}) is True

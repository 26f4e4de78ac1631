"""Tests of the EventBridge target input: Input, InputPath and InputTransformer."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from labkit.local.transformer import (
    TransformerError,
    json_path,
    render_target_input,
    validate_input_transformer,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "eventbridge"
RULE_NAME = "GuardDuty-Example-EC2-MaliciousIPCaller"
RULE_ARN = f"arn:aws:events:eu-west-2:123456789012:rule/{RULE_NAME}"
INSTANCE_ID_PATH = "$.detail.resource.instanceDetails.instanceId"


def _envelope(finding: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6f1c2d3e-0000-4000-8000-000000000002",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": "eu-west-2",
        "resources": [],
        "detail": finding,
    }


def _small_event() -> dict[str, Any]:
    return _envelope(
        {
            "id": "abc123",
            "type": "UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",
            "severity": 5,
            "service": {"count": 3},
            "resource": {"instanceDetails": {"instanceId": "i-0aaa"}},
        }
    )


def _ec2_event() -> dict[str, Any]:
    return _envelope(json.loads((DATA / "guardduty_ec2_event.json").read_text()))


def _render(
    template: str, paths: dict[str, str], event: dict[str, Any] | None = None
) -> str:
    target = {"InputTransformer": {"InputPathsMap": paths, "InputTemplate": template}}
    return render_target_input(
        target,
        _small_event() if event is None else event,
        rule_name=RULE_NAME,
        rule_arn=RULE_ARN,
        ingestion_time=datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC),
    )


P15_PATHS = {
    "gdid": "$.detail.id",
    "instanceid": INSTANCE_ID_PATH,
    "count": "$.detail.service.count",
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.detail.id", (True, "abc123")),
        ("$.detail-type", (True, "GuardDuty Finding")),
        ("$['detail-type']", (True, "GuardDuty Finding")),
        (INSTANCE_ID_PATH, (True, "i-0aaa")),
        ("$.detail.service", (True, {"count": 3})),
        ("$.detail.missing", (False, None)),
        ("$.resources[0]", (False, None)),
        ("$.detail.id.deeper", (False, None)),
    ],
)
def test_json_path_selects_value(path: str, expected: tuple[bool, Any]) -> None:
    """A simple JSONPath returns (found, value), (False, None) when absent."""
    assert json_path(_small_event(), path) == expected


def test_json_path_dollar_is_whole_event() -> None:
    """The path $ selects the whole event."""
    event = _small_event()

    assert json_path(event, "$") == (True, event)


def test_json_path_array_index_and_wildcard() -> None:
    """[n] picks one element and [*] selects every element as a list."""
    event = {"detail": {"items": [{"id": "a"}, {"id": "b"}], "flag": None}}

    assert json_path(event, "$.detail.items[1].id") == (True, "b")
    assert json_path(event, "$.detail.items[*].id") == (True, ["a", "b"])
    assert json_path(event, "$.detail.items[5].id") == (False, None)
    assert json_path(event, "$.detail.flag") == (True, None)


@pytest.mark.parametrize("path", ["detail.id", "", "$.a..b", "$.a[x]", "$a"])
def test_json_path_malformed_raises(path: str) -> None:
    """A path not starting with $ or not readable raises TransformerError."""
    with pytest.raises(TransformerError, match=re.escape(repr(path))):
        json_path(_small_event(), path)


def test_render_p15_string_template_keeps_quotes() -> None:
    """P15 T1: a string template is delivered with its double quotes."""
    text = _render('"Finding <gdid> on <instanceid>"', P15_PATHS)

    assert text == '"Finding abc123 on i-0aaa"'


def test_render_p15_json_template_quotes_strings_only() -> None:
    """P15 T2: a JSON template gives compact JSON, string quoted, number bare."""
    text = _render('{"instance": <instanceid>, "n": <count>}', P15_PATHS)

    assert text == '{"instance":"i-0aaa","n":3}'
    assert json.loads(text) == {"instance": "i-0aaa", "n": 3}


def test_render_p16_missing_path_renders_empty(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P16: a path absent from an Instance finding renders empty, with a warning."""
    event = _ec2_event()
    paths = {
        "userName": "$.detail.resource.accessKeyDetails.userName",
        "gdid": "$.detail.id",
    }

    with caplog.at_level(logging.WARNING, logger="labkit.local.transformer"):
        text = _render('"Role <userName> finding <gdid>"', paths, event)

    assert text == '"Role  finding 16afba5c5c43e07c9e3e5e2e544e95df"'
    assert "<userName>" not in text
    assert "$.detail.resource.accessKeyDetails.userName" in caplog.text


def test_render_missing_path_in_json_value_position_never_leaks() -> None:
    """A missing value in value position leaves no placeholder and no raise."""
    text = _render('{"user": <userName>}', {"userName": "$.detail.nothing"})

    assert text == '{"user": }'


def test_render_rule_arn_and_name_variables() -> None:
    """<aws.events.rule-arn> and <aws.events.rule-name> hold the rule's."""
    text = _render(
        '{"arn": <aws.events.rule-arn>, "name": "<aws.events.rule-name>"}', {}
    )

    assert json.loads(text) == {"arn": RULE_ARN, "name": RULE_NAME}


def test_render_ingestion_time_variable_is_utc_iso8601() -> None:
    """<aws.events.event.ingestion-time> is the receive time in UTC ISO 8601."""
    target = {
        "InputTransformer": {"InputTemplate": '"at <aws.events.event.ingestion-time>"'}
    }
    received = datetime(2024, 5, 1, 14, 0, 5, tzinfo=timezone(timedelta(hours=2)))

    text = render_target_input(
        target, _small_event(), rule_name="r", rule_arn="a", ingestion_time=received
    )

    assert text == '"at 2024-05-01T12:00:05Z"'


def test_render_ingestion_time_defaults_to_now() -> None:
    """Without an ingestion time the current time is used, in the same format."""
    target = {
        "InputTransformer": {"InputTemplate": "<aws.events.event.ingestion-time>"}
    }

    text = render_target_input(target, _small_event(), rule_name="r", rule_arn="a")

    assert re.fullmatch(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', text)


def test_render_event_variable_omits_detail() -> None:
    """<aws.events.event> is the event without its detail field."""
    event = _small_event()

    text = _render('{"e": <aws.events.event>}', {}, event)

    assert json.loads(text) == {"e": {k: v for k, v in event.items() if k != "detail"}}


def test_render_event_json_variable_is_whole_event() -> None:
    """<aws.events.event.json> is the complete event, detail included."""
    event = _small_event()

    text = _render('{"e": <aws.events.event.json>}', {}, event)

    assert json.loads(text) == {"e": event}


def test_render_quoted_placeholder_is_escaped_text() -> None:
    """Inside a JSON string a value's text is inserted, escaped for JSON."""
    event = _envelope({"note": 'say "hi"\nnow', "obj": {"k": 1}})
    paths = {"note": "$.detail.note", "obj": "$.detail.obj"}

    text = _render('{"msg": "note: <note>; obj: <obj>"}', paths, event)

    assert json.loads(text) == {"msg": 'note: say "hi"\nnow; obj: {"k":1}'}


def test_render_value_position_types_are_bare() -> None:
    """Numbers, booleans, null and objects in value position stay JSON values."""
    event = _envelope({"n": 7.5, "b": False, "z": None, "o": {"a": [1]}})
    paths = {k: f"$.detail.{k}" for k in ("n", "b", "z", "o")}

    text = _render('{"n":<n>,"b":<b>,"z":<z>,"o":<o>}', paths, event)

    assert text == '{"n":7.5,"b":false,"z":null,"o":{"a":[1]}}'


def test_render_plain_text_template_inserts_raw_text() -> None:
    """A template that is not JSON gets values as plain text, no quotes added."""
    text = _render("Finding <gdid> on <instanceid>", P15_PATHS)

    assert text == "Finding abc123 on i-0aaa"


def test_render_undefined_variable_is_empty(caplog: pytest.LogCaptureFixture) -> None:
    """A valid variable name missing from InputPathsMap renders empty, warned."""
    with caplog.at_level(logging.WARNING, logger="labkit.local.transformer"):
        text = _render('"id <gdid> by <who>"', P15_PATHS)

    assert text == '"id abc123 by "'
    assert "<who>" in caplog.text


def test_render_non_variable_angle_text_is_kept() -> None:
    """Angle-bracket text that cannot be a variable name is left as written."""
    text = _render('"<gdid> <a.b> < 5 >"', P15_PATHS)

    assert text == '"abc123 <a.b> < 5 >"'


def test_render_invalid_json_template_is_sent_as_text() -> None:
    """A template that is not valid JSON after substitution is delivered as is."""
    text = _render('{"id": <gdid>, oops}', P15_PATHS)

    assert text == '{"id": "abc123", oops}'


def test_render_guardduty_finding_fields() -> None:
    """The finding's instance id, type, id and severity reach the target."""
    paths = {
        "instanceid": INSTANCE_ID_PATH,
        "type": "$.detail.type",
        "gdid": "$.detail.id",
        "severity": "$.detail.severity",
    }
    template = (
        '{"instance": <instanceid>, "type": <type>, "id": <gdid>, '
        '"severity": <severity>, "text": "<type> on <instanceid>"}'
    )

    text = _render(template, paths, _ec2_event())

    assert json.loads(text) == {
        "instance": "i-05746eb48123455e0",
        "type": "Canary:EC2/Stateless.IntegTest",
        "id": "16afba5c5c43e07c9e3e5e2e544e95df",
        "severity": 5,
        "text": "Canary:EC2/Stateless.IntegTest on i-05746eb48123455e0",
    }


P02_BOTO = {"Id": "f1", "Resource": {"InstanceDetails": {"InstanceId": "i-0aaa"}}}
P02_EVENT_DETAIL = {
    "id": "f1",
    "resource": {"instanceDetails": {"instanceId": "i-0aaa"}},
}


def test_json_path_p02_camelcase_path_misses_pascalcase_detail() -> None:
    """P02: the camelCase path finds the id in the event, nothing in a boto3 dict."""
    assert json_path(_envelope(P02_EVENT_DETAIL), INSTANCE_ID_PATH) == (True, "i-0aaa")
    assert json_path(_envelope(P02_BOTO), INSTANCE_ID_PATH) == (False, None)
    assert json_path(P02_BOTO, INSTANCE_ID_PATH) == (False, None)


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (P02_EVENT_DETAIL, '"Isolate i-0aaa for f1"'),
        (P02_BOTO, '"Isolate  for "'),
    ],
    ids=["event-camelCase", "GetFindings-PascalCase"],
)
def test_render_p02_paths_resolve_only_against_the_event_shape(
    detail: dict[str, Any], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    """P02: InputPathsMap paths fill from a camelCase detail; a PascalCase one is empty."""
    paths = {"instanceid": INSTANCE_ID_PATH, "gdid": "$.detail.id"}

    with caplog.at_level(logging.WARNING, logger="labkit.local.transformer"):
        text = _render('"Isolate <instanceid> for <gdid>"', paths, _envelope(detail))

    assert text == expected
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if detail is P02_BOTO:
        assert len(warned) == 2
        assert f"path {INSTANCE_ID_PATH} is not in the event" in warned[0]
        assert "path $.detail.id is not in the event" in warned[1]
    else:
        assert warned == []


def test_render_p02_real_pascalcase_event_detail_gives_empty_instance() -> None:
    """P02: a real event whose detail is in GetFindings' PascalCase yields no id."""
    event = json.loads(
        (DATA / "UnauthorizedAccess-EC2-MaliciousIPCaller.json").read_text()
    )
    paths = {"instanceid": INSTANCE_ID_PATH}

    text = _render('{"instance": "<instanceid>"}', paths, event)

    assert event["detail"]["Resource"]["InstanceDetails"]["InstanceId"] == "i-99999999"
    assert text == '{"instance":""}'


def test_render_guardduty_iam_finding_user_name() -> None:
    """An access-key finding yields its user name through the same template."""
    event = _envelope(json.loads((DATA / "guardduty_iam_event.json").read_text()))
    paths = {"userName": "$.detail.resource.accessKeyDetails.userName"}

    text = _render('"Role <userName> finding"', paths, event)

    assert text == '"Role GeneratedFindingUserName finding"'


def test_render_no_input_sends_whole_event() -> None:
    """A target without Input, InputPath or transformer gets the event as JSON."""
    event = _ec2_event()

    text = render_target_input({"Id": "t"}, event, rule_name="r", rule_arn="a")

    assert json.loads(text) == event
    assert ": " not in text[:40]


def test_render_input_literal_is_sent_verbatim() -> None:
    """An Input literal is delivered exactly as given."""
    target = {"Id": "t", "Input": '{"action": "isolate" }'}

    text = render_target_input(target, _small_event(), rule_name="r", rule_arn="a")

    assert text == '{"action": "isolate" }'


def test_render_input_path_selects_part() -> None:
    """InputPath delivers the selected part of the event as JSON."""
    target = {"Id": "t", "InputPath": "$.detail.resource"}

    text = render_target_input(target, _small_event(), rule_name="r", rule_arn="a")

    assert text == '{"instanceDetails":{"instanceId":"i-0aaa"}}'


def test_render_input_path_missing_sends_null(caplog: pytest.LogCaptureFixture) -> None:
    """An InputPath that selects nothing delivers null and warns."""
    target = {"Id": "t", "InputPath": "$.detail.nothing"}

    with caplog.at_level(logging.WARNING, logger="labkit.local.transformer"):
        text = render_target_input(target, _small_event(), rule_name="r", rule_arn="a")

    assert text == "null"
    assert "$.detail.nothing" in caplog.text


def test_render_two_input_kinds_raises() -> None:
    """A target with both Input and InputPath is refused."""
    target = {"Id": "t", "Input": "{}", "InputPath": "$.detail"}

    with pytest.raises(TransformerError, match="only one of"):
        render_target_input(target, _small_event(), rule_name="r", rule_arn="a")


@pytest.mark.parametrize(
    ("transformer", "message"),
    [
        (
            {
                "InputPathsMap": {f"k{n}": "$.id" for n in range(101)},
                "InputTemplate": "x",
            },
            "101 entries",
        ),
        ({"InputPathsMap": {"gdid": "detail.id"}, "InputTemplate": "x"}, "must start"),
        (
            {"InputPathsMap": {"aws.events.rule-name": "$.id"}, "InputTemplate": "x"},
            "reserved",
        ),
        (
            {"InputPathsMap": {"awsRegion": "$.region"}, "InputTemplate": "x"},
            "reserved",
        ),
        ({"InputPathsMap": {"my key": "$.id"}, "InputTemplate": "x"}, "only letters"),
        ({"InputPathsMap": {"k": 5}, "InputTemplate": "x"}, "JSON path"),
        ({"InputPathsMap": {"k": "$.id"}}, "InputTemplate"),
        ({"InputTemplate": ""}, "InputTemplate"),
        ("not an object", "must be an object"),
    ],
    ids=[
        "101-paths",
        "no-dollar",
        "predefined-key",
        "aws-prefix-key",
        "space-in-key",
        "path-not-text",
        "no-template",
        "empty-template",
        "not-object",
    ],
)
def test_validate_input_transformer_rejects(transformer: Any, message: str) -> None:
    """An invalid InputTransformer raises TransformerError saying what is wrong."""
    with pytest.raises(TransformerError, match=message):
        validate_input_transformer(transformer)


def test_validate_input_transformer_accepts_hundred_paths() -> None:
    """Exactly 100 paths with valid keys and $ paths are accepted."""
    transformer = {
        "InputPathsMap": {f"key_{n}-x": "$.detail.id" for n in range(100)},
        "InputTemplate": '"<key_0-x>"',
    }

    assert validate_input_transformer(transformer) is None


def test_render_invalid_transformer_raises() -> None:
    """Rendering with an invalid transformer raises rather than guessing."""
    target = {"InputTransformer": {"InputPathsMap": {"a": "x"}, "InputTemplate": "<a>"}}

    with pytest.raises(TransformerError, match="'x'"):
        render_target_input(target, _small_event(), rule_name="r", rule_arn="a")


def test_render_none_valued_keys_count_as_absent() -> None:
    """A stored target with Input=None and an InputPath uses the InputPath."""
    target = {"Id": "t", "Input": None, "InputPath": "$.detail.id"}

    text = render_target_input(target, _small_event(), rule_name="r", rule_arn="a")

    assert text == '"abc123"'

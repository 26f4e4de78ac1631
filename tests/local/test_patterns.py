"""Tests of the EventBridge event-pattern engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labkit.local.patterns import PatternError, matches, parse_pattern

DATA = Path(__file__).resolve().parents[1] / "data" / "eventbridge"
EXFILTRATION = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration"


def _event(detail: dict[str, Any], **fields: Any) -> dict[str, Any]:
    event = {
        "version": "0",
        "id": "6f1c2d3e-0000-4000-8000-000000000001",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": "eu-west-2",
        "resources": [],
        "detail": detail,
    }
    event.update(fields)
    return event


def _check(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return matches(parse_pattern(json.dumps(pattern)), event)


def test_parse_pattern_text_returns_dict() -> None:
    """JSON text is parsed into the same dict json.loads gives."""
    text = '{"source": ["aws.guardduty"], "detail": {"severity": [8]}}'

    assert parse_pattern(text) == json.loads(text)


def test_parse_pattern_dict_is_accepted() -> None:
    """A dict pattern is validated and returned unchanged."""
    pattern = {"detail": {"type": [{"prefix": "Recon:"}]}}

    assert parse_pattern(pattern) == {"detail": {"type": [{"prefix": "Recon:"}]}}


def test_pattern_error_is_value_error() -> None:
    """PatternError can be caught as ValueError, with AWS's message opening."""
    with pytest.raises(ValueError, match="^Event pattern is not valid. Reason: "):
        parse_pattern('{"source": "aws.guardduty"}')


def test_matches_guardduty_finding_pattern_on_real_event() -> None:
    """The any-GuardDuty-finding pattern matches a real GuardDuty event."""
    event = json.loads(
        (DATA / "UnauthorizedAccess-EC2-MaliciousIPCaller.json").read_text()
    )
    pattern = {"detail-type": ["GuardDuty Finding"], "source": ["aws.guardduty"]}

    assert _check(pattern, event) is True
    assert _check(pattern, {**event, "source": "aws.securityhub"}) is False
    assert _check(pattern, {**event, "detail-type": "GuardDuty finding"}) is False


def test_matches_guardduty_severity_and_type_on_sample_finding() -> None:
    """A numeric and prefix pattern matches the sample EC2 finding's fields."""
    finding = json.loads((DATA / "guardduty_ec2_event.json").read_text())
    pattern = {
        "source": ["aws.guardduty"],
        "detail": {
            "severity": [{"numeric": [">=", 4]}],
            "type": [{"prefix": "Canary:EC2/"}],
            "resource": {"instanceDetails": {"instanceId": ["i-05746eb48123455e0"]}},
        },
    }

    assert _check(pattern, _event(finding)) is True
    assert _check(pattern, _event({**finding, "severity": 2})) is False


def test_matches_p03_enumerated_severities_miss_critical() -> None:
    """P03: a hand-listed severity pattern without 9.x misses 9.0 and 10.0."""
    listed = [4, *[round(tenths / 10, 1) for tenths in range(40, 90)]]
    pattern = {"source": ["aws.guardduty"], "detail": {"severity": listed}}

    assert _check(pattern, _event({"severity": 5.5})) is True
    assert _check(pattern, _event({"severity": 8.9})) is True
    assert _check(pattern, _event({"severity": 9.0})) is False
    assert _check(pattern, _event({"severity": 10.0})) is False


def test_matches_p03_numeric_pattern_catches_critical() -> None:
    """P03: {"numeric": [">=", 4]} matches 4, 9.0 and 10.0 but not 3.9."""
    pattern = {"detail": {"severity": [{"numeric": [">=", 4]}]}}

    assert _check(pattern, _event({"severity": 4})) is True
    assert _check(pattern, _event({"severity": 9.0})) is True
    assert _check(pattern, _event({"severity": 10.0})) is True
    assert _check(pattern, _event({"severity": 3.9})) is False


def test_matches_p12_exact_type_misses_outside_aws_suffix() -> None:
    """P12: the exact old type name does not match the .OutsideAWS type."""
    event = _event({"type": f"{EXFILTRATION}.OutsideAWS"})
    pattern = {"source": ["aws.guardduty"], "detail": {"type": [EXFILTRATION]}}

    assert _check(pattern, event) is False


def test_matches_p12_prefix_type_matches_outside_aws_suffix() -> None:
    """P12: a prefix pattern on the old type name matches .OutsideAWS."""
    event = _event({"type": f"{EXFILTRATION}.OutsideAWS"})
    pattern = {
        "source": ["aws.guardduty"],
        "detail": {"type": [{"prefix": EXFILTRATION}]},
    }

    assert _check(pattern, event) is True


def test_matches_p12_no_implicit_substring() -> None:
    """P12: a part of the type name matches neither as substring nor prefix."""
    event = _event({"type": f"{EXFILTRATION}.OutsideAWS"})

    assert (
        _check({"detail": {"type": ["InstanceCredentialExfiltration"]}}, event) is False
    )
    assert _check({"detail": {"type": ["UnauthorizedAccess"]}}, event) is False


@pytest.mark.parametrize(
    ("pattern", "severity", "expected"),
    [
        ([8], 8, True),
        ([8], 8.0, False),
        (["8"], 8, False),
        ([{"numeric": [">=", 7]}], 8.0, True),
        ([{"numeric": [">=", 7]}], 9.0, True),
    ],
    ids=["int-on-int", "int-on-float", "string-on-int", "numeric-8.0", "numeric-9.0"],
)
def test_matches_p13_number_typing(
    pattern: list[Any], severity: Any, expected: bool
) -> None:
    """P13: exact numbers compare JSON text and types; numeric compares values."""
    assert (
        _check({"detail": {"severity": pattern}}, _event({"severity": severity}))
        is expected
    )


MATCHER_CASES = [
    # exact values
    ("string", {"a": ["x"]}, {"a": "x"}, True),
    ("string-other", {"a": ["x"]}, {"a": "y"}, False),
    ("string-no-prefix", {"a": ["aws.guard"]}, {"a": "aws.guardduty"}, False),
    ("string-empty", {"a": [""]}, {"a": ""}, True),
    ("string-on-missing", {"a": ["x"]}, {}, False),
    ("number-on-string", {"a": [8]}, {"a": "8"}, False),
    ("null", {"a": [None]}, {"a": None}, True),
    ("null-on-missing", {"a": [None]}, {}, False),
    ("true", {"a": [True]}, {"a": True}, True),
    ("true-on-string", {"a": [True]}, {"a": "true"}, False),
    ("string-true-on-bool", {"a": ["true"]}, {"a": True}, False),
    ("one-on-true", {"a": [1]}, {"a": True}, False),
    ("any-of-list", {"a": ["x", "y"]}, {"a": "y"}, True),
    # event arrays
    ("array-any-element", {"r": ["arn:b"]}, {"r": ["arn:a", "arn:b"]}, True),
    ("array-no-element", {"r": ["arn:c"]}, {"r": ["arn:a", "arn:b"]}, False),
    ("array-nested", {"r": ["b"]}, {"r": [["a"], ["b"]]}, True),
    # prefix and suffix
    ("prefix", {"a": [{"prefix": "aws."}]}, {"a": "aws.ec2"}, True),
    ("prefix-miss", {"a": [{"prefix": "aws."}]}, {"a": "x.aws.ec2"}, False),
    ("prefix-on-number", {"a": [{"prefix": "1"}]}, {"a": 10}, False),
    ("prefix-case", {"a": [{"prefix": "AWS."}]}, {"a": "aws.ec2"}, False),
    (
        "prefix-ignore-case",
        {"a": [{"prefix": {"equals-ignore-case": "EVENTB"}}]},
        {"a": "EventBridge"},
        True,
    ),
    ("suffix", {"a": [{"suffix": ".png"}]}, {"a": "cat.png"}, True),
    ("suffix-miss", {"a": [{"suffix": ".png"}]}, {"a": "cat.jpg"}, False),
    (
        "suffix-ignore-case",
        {"a": [{"suffix": {"equals-ignore-case": ".PNG"}}]},
        {"a": "cat.png"},
        True,
    ),
    # equals-ignore-case
    ("eic", {"a": [{"equals-ignore-case": "alice"}]}, {"a": "ALICE"}, True),
    ("eic-miss", {"a": [{"equals-ignore-case": "alice"}]}, {"a": "alicia"}, False),
    # wildcard
    ("wildcard", {"a": [{"wildcard": "dir/*.png"}]}, {"a": "dir/a/b.png"}, True),
    ("wildcard-miss", {"a": [{"wildcard": "dir/*.png"}]}, {"a": "dir/a.jpg"}, False),
    ("wildcard-escaped-star", {"a": [{"wildcard": "a\\*b"}]}, {"a": "a*b"}, True),
    ("wildcard-escaped-miss", {"a": [{"wildcard": "a\\*b"}]}, {"a": "axb"}, False),
    ("wildcard-empty", {"a": [{"wildcard": "*"}]}, {"a": ""}, True),
    ("wildcard-regex-chars", {"a": [{"wildcard": "a.c*"}]}, {"a": "abcd"}, False),
    # anything-but
    ("ab-string", {"a": [{"anything-but": "init"}]}, {"a": "running"}, True),
    ("ab-string-hit", {"a": [{"anything-but": "init"}]}, {"a": "init"}, False),
    ("ab-on-number", {"a": [{"anything-but": "init"}]}, {"a": 5}, True),
    ("ab-on-missing", {"a": [{"anything-but": "init"}]}, {}, False),
    ("ab-list", {"a": [{"anything-but": ["s", "o"]}]}, {"a": "o"}, False),
    ("ab-numbers", {"a": [{"anything-but": [100, 200]}]}, {"a": 150}, True),
    ("ab-numbers-hit", {"a": [{"anything-but": [100, 200]}]}, {"a": 200.0}, False),
    (
        "ab-prefix",
        {"a": [{"anything-but": {"prefix": "us-"}}]},
        {"a": "eu-west-2"},
        True,
    ),
    (
        "ab-prefix-hit",
        {"a": [{"anything-but": {"prefix": "us-"}}]},
        {"a": "us-east-1"},
        False,
    ),
    (
        "ab-suffix-hit",
        {"a": [{"anything-but": {"suffix": ".png"}}]},
        {"a": "x.png"},
        False,
    ),
    ("ab-suffix", {"a": [{"anything-but": {"suffix": ".png"}}]}, {"a": "x.gif"}, True),
    (
        "ab-wildcard-hit",
        {"a": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"a": "/usr/lib/x"},
        False,
    ),
    (
        "ab-wildcard",
        {"a": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"a": "/usr/bin/x"},
        True,
    ),
    (
        "ab-eic-hit",
        {"a": [{"anything-but": {"equals-ignore-case": ["Ok", "b"]}}]},
        {"a": "OK"},
        False,
    ),
    (
        "ab-eic",
        {"a": [{"anything-but": {"equals-ignore-case": ["Ok", "b"]}}]},
        {"a": "c"},
        True,
    ),
    # numeric
    ("numeric-range-top", {"a": [{"numeric": [">", 0, "<=", 5]}]}, {"a": 5}, True),
    ("numeric-range-low", {"a": [{"numeric": [">", 0, "<=", 5]}]}, {"a": 0}, False),
    ("numeric-range-high", {"a": [{"numeric": [">", 0, "<=", 5]}]}, {"a": 5.01}, False),
    ("numeric-equals", {"a": [{"numeric": ["=", 301.8]}]}, {"a": 301.8}, True),
    ("numeric-equals-int", {"a": [{"numeric": ["=", 8]}]}, {"a": 8.0}, True),
    ("numeric-less", {"a": [{"numeric": ["<", 10]}]}, {"a": -3}, True),
    ("numeric-on-string", {"a": [{"numeric": [">=", 4]}]}, {"a": "9"}, False),
    ("numeric-on-bool", {"a": [{"numeric": [">=", 0]}]}, {"a": True}, False),
    # exists
    ("exists-true", {"a": [{"exists": True}]}, {"a": "x"}, True),
    ("exists-true-null", {"a": [{"exists": True}]}, {"a": None}, True),
    ("exists-true-missing", {"a": [{"exists": True}]}, {}, False),
    ("exists-false-missing", {"a": [{"exists": False}]}, {}, True),
    ("exists-false-present", {"a": [{"exists": False}]}, {"a": "x"}, False),
    ("exists-true-object", {"a": [{"exists": True}]}, {"a": {"b": 1}}, False),
    ("exists-false-object", {"a": [{"exists": False}]}, {"a": {"b": 1}}, True),
    ("exists-false-parent-missing", {"d": {"a": [{"exists": False}]}}, {}, True),
    ("exists-true-array", {"a": [{"exists": True}]}, {"a": ["x"]}, True),
    # cidr
    ("cidr-v4", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.33"}, True),
    ("cidr-v4-miss", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.1"}, False),
    ("cidr-not-ip", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "host"}, False),
    ("cidr-v6", {"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::1"}, True),
    ("cidr-v6-on-v4", {"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "10.0.0.1"}, False),
    # combinations
    ("mixed-matchers", {"a": ["x", {"prefix": "b"}]}, {"a": "bee"}, True),
    ("and-fields", {"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False),
    ("nested", {"d": {"s": {"t": ["run"]}}}, {"d": {"s": {"t": "run"}}}, True),
    ("nested-missing", {"d": {"s": ["run"]}}, {"d": "run"}, False),
    ("or-first", {"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "1"}, True),
    ("or-second", {"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"b": "2"}, True),
    ("or-none", {"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "2"}, False),
    (
        "or-nested-and",
        {"s": ["cw"], "d": {"$or": [{"m": ["cpu"]}, {"n": ["ec2"], "k": [1]}]}},
        {"s": "cw", "d": {"n": "ec2", "k": 1}},
        True,
    ),
    (
        "array-objects-same-element",
        {"e": {"first": ["Anna"], "last": ["Smith"]}},
        {"e": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}]},
        True,
    ),
    (
        "array-objects-across-elements",
        {"e": {"first": ["Anna"], "last": ["Doe"]}},
        {"e": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}]},
        False,
    ),
]


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [case[1:] for case in MATCHER_CASES],
    ids=[case[0] for case in MATCHER_CASES],
)
def test_matches_matcher_table(
    pattern: dict[str, Any], event: dict[str, Any], expected: bool
) -> None:
    """Each matcher gives AWS's documented result on the given event."""
    assert _check(pattern, event) is expected


INVALID_CASES = [
    ("not-json", "{source: aws}", "not valid JSON"),
    ("not-object", "[1]", "must be a JSON object"),
    ("empty", "{}", "empty objects"),
    ("empty-nested", {"detail": {}}, "empty objects"),
    ("scalar-leaf", {"source": "aws.ec2"}, "'source' must be an object or an array"),
    ("number-leaf", {"detail": {"severity": 5}}, "'detail.severity'"),
    ("empty-array", {"source": []}, "must not be an empty array"),
    ("nested-array", {"source": [["a"]]}, "nested arrays"),
    (
        "unknown-operator",
        {"a": [{"contains": "x"}]},
        "unrecognized match type 'contains'",
    ),
    ("two-operators", {"a": [{"prefix": "a", "suffix": "b"}]}, "one operator"),
    ("prefix-number", {"a": [{"prefix": 1}]}, "prefix"),
    ("suffix-bad-object", {"a": [{"suffix": {"wildcard": "x"}}]}, "suffix"),
    ("eic-number", {"a": [{"equals-ignore-case": 5}]}, "takes a string"),
    ("exists-string", {"a": [{"exists": "true"}]}, "true or false"),
    ("numeric-backwards", {"a": [{"numeric": ["<", 1, ">", 5]}]}, "numeric"),
    ("numeric-empty-range", {"a": [{"numeric": [">", 5, "<", 1]}]}, "is empty"),
    ("numeric-bad-op", {"a": [{"numeric": ["==", 5]}]}, "unknown operator '=='"),
    ("numeric-string", {"a": [{"numeric": [">", "5"]}]}, "numbers"),
    ("numeric-too-big", {"a": [{"numeric": [">", 6e9]}]}, "5.0e9"),
    ("numeric-three", {"a": [{"numeric": [">", 1, "<"]}]}, "numeric"),
    ("numeric-not-list", {"a": [{"numeric": 5}]}, "numeric"),
    ("cidr-bad-prefix", {"ip": [{"cidr": "10.0.0.0/33"}]}, "CIDR"),
    ("cidr-no-prefix", {"ip": [{"cidr": "10.0.0.1"}]}, "CIDR"),
    ("cidr-text", {"ip": [{"cidr": "office"}]}, "'office'"),
    ("or-one", {"$or": [{"a": ["1"]}]}, "at least 2"),
    ("or-object", {"$or": {"a": ["1"]}}, "at least 2"),
    ("or-scalar-item", {"$or": [{"a": ["1"]}, "b"]}, "must be an object"),
    ("ab-empty-list", {"a": [{"anything-but": []}]}, "anything-but"),
    ("ab-mixed-list", {"a": [{"anything-but": ["a", 1]}]}, "only strings or only"),
    ("ab-bool", {"a": [{"anything-but": True}]}, "anything-but"),
    ("ab-empty-prefix", {"a": [{"anything-but": {"prefix": ""}}]}, "must not be empty"),
    ("ab-unknown", {"a": [{"anything-but": {"numeric": [">", 1]}}]}, "anything-but"),
    ("wildcard-double-star", {"a": [{"wildcard": "a**b"}]}, "consecutive"),
    ("wildcard-bad-escape", {"a": [{"wildcard": "a\\b"}]}, "may follow"),
    ("wildcard-trailing-escape", {"a": [{"wildcard": "a\\"}]}, "lone"),
]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [case[1:] for case in INVALID_CASES],
    ids=[case[0] for case in INVALID_CASES],
)
def test_parse_pattern_invalid_is_rejected(pattern: Any, reason: str) -> None:
    """An invalid pattern raises PatternError whose reason names the fault."""
    with pytest.raises(PatternError) as caught:
        parse_pattern(pattern)

    assert str(caught.value).startswith("Event pattern is not valid. Reason: ")
    assert reason in caught.value.reason


def test_parse_pattern_escaped_backslash_wildcard_is_valid() -> None:
    """A wildcard may escape a backslash and then match it literally."""
    pattern = parse_pattern({"path": [{"wildcard": "C:\\\\*"}]})

    assert matches(pattern, {"path": "C:\\Windows"}) is True
    assert matches(pattern, {"path": "D:\\Windows"}) is False

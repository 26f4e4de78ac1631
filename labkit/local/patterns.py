"""EventBridge event patterns: validation and matching, as AWS documents them.

A pattern is a JSON object whose leaves are non-empty arrays of matchers. An
event matches when every field named in the pattern matches, and a field
matches when any of its matchers matches any of the field's values (an array
in the event offers each of its elements). Matching is type-sensitive: the
string ``"8"`` never matches the number 8, and an exact number matches by its
JSON text, so ``[8]`` matches 8 but not 8.0. Use ``{"numeric": [...]}`` to
compare numbers by value.

One difference from AWS remains: events arrive here already parsed, so two
spellings of the same float (``3.0e2`` and ``300.0``) cannot be told apart and
match each other.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import math
import re
from operator import eq, ge, gt, le, lt
from typing import Any

logger = logging.getLogger(__name__)

OPERATORS = (
    "anything-but",
    "cidr",
    "equals-ignore-case",
    "exists",
    "numeric",
    "prefix",
    "suffix",
    "wildcard",
)

_ANYTHING_BUT_OPERATORS = ("equals-ignore-case", "prefix", "suffix", "wildcard")
_LOWER_BOUNDS = (">", ">=")
_UPPER_BOUNDS = ("<", "<=")
_NUMERIC_LIMIT = 5.0e9
_MISSING = object()
_COMPARISONS = {"=": eq, "<": lt, "<=": le, ">": gt, ">=": ge}


class PatternError(ValueError):
    """An event pattern that EventBridge would refuse."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Event pattern is not valid. Reason: {reason}")
        self.reason = reason


def parse_pattern(pattern: str | dict[str, Any]) -> dict[str, Any]:
    """Parse and validate an event pattern.

    Args:
        pattern: the pattern as JSON text or as an already parsed dict.

    Returns:
        The pattern as a dict, ready for :func:`matches`.

    Raises:
        PatternError: the text is not JSON, or the pattern breaks a rule of
            EventBridge's pattern syntax; the message names the offending key.
    """
    if isinstance(pattern, str):
        try:
            parsed = json.loads(pattern)
        except json.JSONDecodeError as exc:
            raise PatternError(f"the pattern is not valid JSON ({exc})") from None
    else:
        parsed = pattern
    if not isinstance(parsed, dict):
        raise PatternError(f"the pattern must be a JSON object, got {parsed!r}")
    _check_object(parsed, "")
    return parsed


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Tell whether an event matches a (validated) event pattern.

    Args:
        pattern: a pattern returned by :func:`parse_pattern`.
        event: the whole event, with ``source``, ``detail-type``, ``detail``...

    Returns:
        True if every field of the pattern matches the event.
    """
    return _match_object(pattern, event)


# Validation


def _check_object(obj: dict[str, Any], where: str) -> None:
    if not obj:
        raise PatternError(f"empty objects are not allowed (at {where or 'top'!r})")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise PatternError(f"field names must be strings, got {key!r}")
        path = f"{where}.{key}" if where else key
        if key == "$or":
            _check_or(value, path)
        elif isinstance(value, dict):
            _check_object(value, path)
        elif isinstance(value, list):
            if not value:
                raise PatternError(f"{path!r} must not be an empty array")
            for matcher in value:
                _check_matcher(matcher, path)
        else:
            raise PatternError(
                f"{path!r} must be an object or an array of matchers, got {value!r}"
            )


def _check_or(value: Any, path: str) -> None:
    if not isinstance(value, list) or len(value) < 2:
        raise PatternError(
            f"{path!r} must be an array of at least 2 objects, got {value!r}"
        )
    for alternative in value:
        if not isinstance(alternative, dict):
            raise PatternError(f"each item of {path!r} must be an object")
        _check_object(alternative, path)


def _check_matcher(matcher: Any, path: str) -> None:
    if matcher is None or isinstance(matcher, str | bool):
        return
    if isinstance(matcher, int | float):
        if not math.isfinite(matcher):
            raise PatternError(f"{path!r} holds a number that is not finite")
        return
    if isinstance(matcher, list):
        raise PatternError(f"{path!r} must not hold nested arrays, got {matcher!r}")
    if not isinstance(matcher, dict) or len(matcher) != 1:
        raise PatternError(
            f"a matcher in {path!r} must be a value or an object with one "
            f"operator, got {matcher!r}"
        )
    ((operator, operand),) = matcher.items()
    if operator not in OPERATORS:
        raise PatternError(
            f"unrecognized match type {operator!r} in {path!r}; "
            f"allowed: {', '.join(OPERATORS)}"
        )
    _OPERAND_CHECKS[operator](operand, f"{path}: {operator}")


def _check_string(operand: Any, where: str) -> None:
    if not isinstance(operand, str):
        raise PatternError(f"{where!r} takes a string, got {operand!r}")


def _check_affix(operand: Any, where: str) -> None:
    if isinstance(operand, dict) and list(operand) == ["equals-ignore-case"]:
        _check_string(operand["equals-ignore-case"], where)
        return
    if not isinstance(operand, str):
        raise PatternError(
            f"{where!r} takes a string or {{'equals-ignore-case': string}}, "
            f"got {operand!r}"
        )


def _check_wildcard(operand: Any, where: str) -> None:
    _check_string(operand, where)
    escaped = after_star = False
    for char in operand:
        if escaped and char not in "*\\":
            raise PatternError(
                f"{where!r}: only '*' and '\\' may follow '\\', got {operand!r}"
            )
        if not escaped and char == "*" and after_star:
            raise PatternError(
                f"{where!r}: consecutive '*' are not allowed: {operand!r}"
            )
        after_star = not escaped and char == "*"
        escaped = not escaped and char == "\\"
    if escaped:
        raise PatternError(f"{where!r} ends with a lone '\\': {operand!r}")


def _check_exists(operand: Any, where: str) -> None:
    if not isinstance(operand, bool):
        raise PatternError(f"{where!r} takes true or false, got {operand!r}")


def _check_cidr(operand: Any, where: str) -> None:
    _check_string(operand, where)
    try:
        if "/" not in operand:
            raise ValueError(operand)
        ipaddress.ip_network(operand, strict=False)
    except ValueError:
        raise PatternError(
            f"{where!r} takes an IPv4 or IPv6 CIDR block such as '10.0.0.0/24', "
            f"got {operand!r}"
        ) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_numeric(operand: Any, where: str) -> None:
    allowed = "['=', n], [op, n] or ['>'|'>=', low, '<'|'<=', high]"
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise PatternError(f"{where!r} takes {allowed}, got {operand!r}")
    ops, numbers = operand[0::2], operand[1::2]
    for number in numbers:
        if not _is_number(number) or abs(number) > _NUMERIC_LIMIT:
            raise PatternError(
                f"{where!r} compares with numbers between -5.0e9 and 5.0e9, "
                f"got {number!r}"
            )
    if len(operand) == 2:
        if ops[0] not in ("=", *_LOWER_BOUNDS, *_UPPER_BOUNDS):
            operators = ", ".join(
                repr(op) for op in ("=", *_LOWER_BOUNDS, *_UPPER_BOUNDS)
            )
            raise PatternError(
                f"{where!r}: unknown operator {ops[0]!r}; the operators are {operators}"
            )
        return
    if ops[0] not in _LOWER_BOUNDS or ops[1] not in _UPPER_BOUNDS:
        raise PatternError(f"{where!r} takes {allowed}, got {operand!r}")
    if numbers[0] >= numbers[1]:
        raise PatternError(f"{where!r}: the range {operand!r} is empty")


def _check_anything_but(operand: Any, where: str) -> None:
    if isinstance(operand, str) or _is_number(operand):
        return
    if isinstance(operand, list):
        if operand and (
            all(isinstance(item, str) for item in operand)
            or all(_is_number(item) for item in operand)
        ):
            return
        raise PatternError(
            f"{where!r} takes a non-empty list of only strings or only numbers, "
            f"got {operand!r}"
        )
    if isinstance(operand, dict) and len(operand) == 1:
        ((operator, inner),) = operand.items()
        inner_where = f"{where}: {operator}"
        if operator in ("prefix", "suffix"):
            _check_string(inner, inner_where)
            if not inner:
                raise PatternError(f"{inner_where!r} must not be empty")
            return
        if operator in ("equals-ignore-case", "wildcard"):
            items = inner if isinstance(inner, list) and inner else [inner]
            check = (
                _check_string if operator == "equals-ignore-case" else _check_wildcard
            )
            for item in items:
                check(item, inner_where)
            return
    raise PatternError(
        f"{where!r} takes a string, a number, a list of them, or an object with "
        f"one of {', '.join(_ANYTHING_BUT_OPERATORS)}; got {operand!r}"
    )


_OPERAND_CHECKS = {
    "anything-but": _check_anything_but,
    "cidr": _check_cidr,
    "equals-ignore-case": _check_string,
    "exists": _check_exists,
    "numeric": _check_numeric,
    "prefix": _check_affix,
    "suffix": _check_affix,
    "wildcard": _check_wildcard,
}


# Matching


def _flatten(values: list[Any]) -> list[Any]:
    """Crush nested event arrays into one list, as EventBridge does."""
    flat: list[Any] = []
    for value in values:
        flat.extend(_flatten(value) if isinstance(value, list) else [value])
    return flat


def _match_object(pattern: dict[str, Any], value: Any) -> bool:
    if isinstance(value, list):
        # Each array element is tried on its own, so that two fields of the
        # pattern are never satisfied by two different elements.
        elements = [item for item in _flatten(value) if isinstance(item, dict)]
        return any(_match_object(pattern, item) for item in elements or [{}])
    if not isinstance(value, dict):
        value = {}
    for key, sub in pattern.items():
        if key == "$or":
            ok = any(_match_object(alternative, value) for alternative in sub)
        elif isinstance(sub, dict):
            ok = _match_object(sub, value.get(key, _MISSING))
        else:
            ok = _match_field(sub, value.get(key, _MISSING))
        if not ok:
            return False
    return True


def _leaf_values(value: Any) -> list[Any]:
    if value is _MISSING or isinstance(value, dict):
        return []
    if isinstance(value, list):
        return [item for item in _flatten(value) if not isinstance(item, dict)]
    return [value]


def _match_field(matchers: list[Any], value: Any) -> bool:
    leaves = _leaf_values(value)
    for matcher in matchers:
        if isinstance(matcher, dict) and "exists" in matcher:
            # Only leaves count: a field holding an object does not "exist".
            if bool(leaves) == matcher["exists"]:
                return True
        elif any(_match_value(matcher, leaf) for leaf in leaves):
            return True
    return False


def _match_value(matcher: Any, value: Any) -> bool:
    if matcher is None:
        return value is None
    if isinstance(matcher, bool):
        return isinstance(value, bool) and value is matcher
    if isinstance(matcher, str):
        return isinstance(value, str) and value == matcher
    if _is_number(matcher):
        # JSON text, not value: AWS matches [8] to 8 but not to 8.0.
        return _is_number(value) and json.dumps(value) == json.dumps(matcher)
    ((operator, operand),) = matcher.items()
    if operator == "anything-but":
        return not _excluded(operand, value)
    if operator == "numeric":
        return _is_number(value) and _in_range(operand, value)
    if not isinstance(value, str):
        return False
    if operator in ("prefix", "suffix"):
        return _match_affix(operator, operand, value)
    if operator == "equals-ignore-case":
        return value.casefold() == operand.casefold()
    if operator == "wildcard":
        return _wildcard_regex(operand).fullmatch(value) is not None
    return _in_cidr(operand, value)


def _match_affix(operator: str, operand: Any, value: str) -> bool:
    if isinstance(operand, dict):
        operand = operand["equals-ignore-case"].casefold()
        value = value.casefold()
    if operator == "prefix":
        return value.startswith(operand)
    return value.endswith(operand)


def _in_range(operand: list[Any], value: int | float) -> bool:
    pairs = zip(operand[0::2], operand[1::2], strict=True)
    return all(_COMPARISONS[op](value, bound) for op, bound in pairs)


def _in_cidr(operand: str, value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address in ipaddress.ip_network(operand, strict=False)


@functools.lru_cache(maxsize=256)
def _wildcard_regex(wildcard: str) -> re.Pattern[str]:
    # A token is an escaped character, a bare star, or any other character.
    tokens = re.findall(r"\\.|\*|.", wildcard, re.DOTALL)
    parts = [".*" if token == "*" else re.escape(token[-1]) for token in tokens]
    return re.compile("".join(parts), re.DOTALL)


def _excluded(operand: Any, value: Any) -> bool:
    """Tell whether an anything-but operand rules the value out."""
    if isinstance(operand, list):
        return any(_excluded(item, value) for item in operand)
    if isinstance(operand, str):
        return isinstance(value, str) and value == operand
    if _is_number(operand):
        return _is_number(value) and value == operand
    if not isinstance(value, str):
        return False
    ((operator, inner),) = operand.items()
    if operator == "prefix":
        return value.startswith(inner)
    if operator == "suffix":
        return value.endswith(inner)
    items = inner if isinstance(inner, list) else [inner]
    if operator == "equals-ignore-case":
        return any(value.casefold() == item.casefold() for item in items)
    return any(_wildcard_regex(item).fullmatch(value) for item in items)

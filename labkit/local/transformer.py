"""What an EventBridge target receives: the event, Input, InputPath or a template.

The rules follow AWS's input transformer. A template that is a JSON string
(``"Finding <id>"``) is delivered as written, quotes included, with values
inserted as text. In a JSON template a placeholder in value position becomes a
JSON value (a string gets its quotes) and the result is sent as compact JSON;
inside a quoted string the value's text is inserted, escaped for JSON. A path
that is missing from the event renders as empty text, with a warning naming it.

Where AWS's behaviour is not documented, this module chooses and says so: an
``InputPath`` that selects nothing delivers ``null``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

PREDEFINED_VARIABLES = (
    "aws.events.rule-arn",
    "aws.events.rule-name",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
)
MAX_INPUT_PATHS = 100
MAX_TEMPLATE_CHARS = 8192
MAX_PATH_CHARS = 256

_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_PATH_STEP = re.compile(
    r"\.(?P<name>[^.\[\]]+)|\[(?P<index>\d+|\*)\]|\['(?P<quoted>[^']*)'\]"
)


class TransformerError(ValueError):
    """An Input, InputPath or InputTransformer that EventBridge would refuse."""


def json_path(event: Any, path: str) -> tuple[bool, Any]:
    """Select a value from an event with EventBridge's simple JSONPath.

    Supported: ``$``, dot names (dashes allowed, ``$.detail-type``), array
    indices (``$.resources[0]``), ``['quoted name']`` and the wildcards
    ``.*`` and ``[*]``, which select a list of every match.

    Args:
        event: the event, or any parsed JSON value.
        path: the path, starting with ``$``.

    Returns:
        ``(found, value)``; ``(False, None)`` when the path selects nothing.

    Raises:
        TransformerError: the path does not start with ``$`` or cannot be read.
    """
    steps = _parse_path(path)
    nodes = [event]
    many = False
    for step in steps:
        selected: list[Any] = []
        for node in nodes:
            selected.extend(_select(node, step))
        nodes = selected
        many = many or step == "*"
    if many:
        return bool(nodes), nodes
    if not nodes:
        return False, None
    return True, nodes[0]


def render_target_input(
    target: dict[str, Any],
    event: dict[str, Any],
    *,
    rule_name: str,
    rule_arn: str,
    ingestion_time: datetime | None = None,
) -> str:
    """Render the text one target of a rule receives for one event.

    Args:
        target: the target as PutTargets takes it (``Input``, ``InputPath`` or
            ``InputTransformer``, at most one of them).
        event: the matched event.
        rule_name: the rule's name, for ``<aws.events.rule-name>``.
        rule_arn: the rule's ARN, for ``<aws.events.rule-arn>``.
        ingestion_time: when the bus received the event; now if not given.

    Returns:
        The text delivered to the target: the whole event as compact JSON when
        the target sets none of the three.

    Raises:
        TransformerError: the target sets more than one of the three, or its
            input transformer is not valid. A path missing from the event
            never raises.
    """
    kinds = ("Input", "InputPath", "InputTransformer")
    given = [key for key in kinds if target.get(key) is not None]
    if len(given) > 1:
        raise TransformerError(
            f"a target may set only one of Input, InputPath and InputTransformer, "
            f"got {given!r}; keep one of them"
        )
    if not given:
        return _dump(event)
    if given[0] == "Input":
        return str(target["Input"])
    if given[0] == "InputPath":
        found, value = json_path(event, target["InputPath"])
        if not found:
            logger.warning(
                "Rule %s: InputPath %s selects nothing in event %s; sending null",
                rule_name,
                target["InputPath"],
                event.get("id"),
            )
        return _dump(value)
    transformer = target["InputTransformer"]
    validate_input_transformer(transformer)
    values = _variables(transformer, event, rule_name, rule_arn, ingestion_time)
    text, missing = _render_template(transformer["InputTemplate"], values)
    paths = transformer.get("InputPathsMap") or {}
    for name in missing:
        logger.warning(
            "Rule %s: <%s> rendered empty for event %s: %s",
            rule_name,
            name,
            event.get("id"),
            f"path {paths[name]} is not in the event"
            if name in paths
            else "it is not defined in InputPathsMap",
        )
    return text


def validate_input_transformer(transformer: Any) -> None:
    """Check an InputTransformer as PutTargets does.

    Args:
        transformer: ``{"InputPathsMap": {...}, "InputTemplate": "..."}``.

    Raises:
        TransformerError: the template is missing or too long, there are more
            than 100 paths, a key is reserved or not made of letters, digits,
            ``_`` and ``-``, or a path does not start with ``$``.
    """
    if not isinstance(transformer, dict):
        raise TransformerError(
            f"InputTransformer must be an object, got {transformer!r}"
        )
    template = transformer.get("InputTemplate")
    if not isinstance(template, str) or not 0 < len(template) <= MAX_TEMPLATE_CHARS:
        raise TransformerError(
            f"InputTemplate must be text of 1 to {MAX_TEMPLATE_CHARS} characters, "
            f"got {template!r}"
        )
    paths = transformer.get("InputPathsMap") or {}
    if not isinstance(paths, dict):
        raise TransformerError(f"InputPathsMap must be an object, got {paths!r}")
    if len(paths) > MAX_INPUT_PATHS:
        raise TransformerError(
            f"InputPathsMap has {len(paths)} entries; at most {MAX_INPUT_PATHS} "
            f"are allowed"
        )
    for key, path in paths.items():
        _check_key(key)
        if not isinstance(path, str) or len(path) > MAX_PATH_CHARS:
            raise TransformerError(
                f"InputPathsMap[{key!r}] must be a JSON path of at most "
                f"{MAX_PATH_CHARS} characters, got {path!r}"
            )
        _parse_path(path)


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise TransformerError(f"InputPathsMap keys must be text, got {key!r}")
    if key in PREDEFINED_VARIABLES or key.lower().startswith("aws"):
        raise TransformerError(
            f"InputPathsMap key {key!r} is reserved: keys may not start with "
            f"'aws' (the predefined variables are {', '.join(PREDEFINED_VARIABLES)})"
        )
    if not _KEY.fullmatch(key) or len(key) > MAX_PATH_CHARS:
        raise TransformerError(
            f"InputPathsMap key {key!r} may hold only letters, digits, '_' and '-'"
        )


def _parse_path(path: str) -> list[str | int]:
    if not isinstance(path, str) or not path.startswith("$"):
        raise TransformerError(
            f"a JSON path must start with '$', such as '$.detail.id'; got {path!r}"
        )
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            raise TransformerError(
                f"cannot read JSON path {path!r} at character {position}; "
                f"use dot names and [index], such as '$.detail.resources[0].id'"
            )
        index = match["index"]
        if index is not None:
            steps.append("*" if index == "*" else int(index))
        else:
            steps.append(
                match["name"] if match["name"] is not None else match["quoted"]
            )
        position = match.end()
    return steps


def _select(node: Any, step: str | int) -> list[Any]:
    if step == "*":
        if isinstance(node, dict):
            return list(node.values())
        return list(node) if isinstance(node, list) else []
    if isinstance(step, int):
        return [node[step]] if isinstance(node, list) and step < len(node) else []
    return [node[step]] if isinstance(node, dict) and step in node else []


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _variables(
    transformer: dict[str, Any],
    event: dict[str, Any],
    rule_name: str,
    rule_arn: str,
    ingestion_time: datetime | None,
) -> dict[str, tuple[bool, Any]]:
    received = ingestion_time or datetime.now(UTC)
    values: dict[str, tuple[bool, Any]] = {
        "aws.events.rule-arn": (True, rule_arn),
        "aws.events.rule-name": (True, rule_name),
        "aws.events.event.ingestion-time": (
            True,
            received.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ),
        "aws.events.event": (
            True,
            {key: value for key, value in event.items() if key != "detail"},
        ),
        "aws.events.event.json": (True, event),
    }
    for key, path in (transformer.get("InputPathsMap") or {}).items():
        values[key] = json_path(event, path)
    return values


def _render_template(
    template: str, values: dict[str, tuple[bool, Any]]
) -> tuple[str, list[str]]:
    """Substitute the placeholders; return the text and the names left empty."""
    stripped = template.strip()
    alone = _PLACEHOLDER.fullmatch(stripped) is not None
    json_like = alone or stripped[:1] in ("{", "[", '"')
    parts: list[str] = []
    missing: list[str] = []
    in_string = False
    position = 0
    while position < len(template):
        char = template[position]
        match = _PLACEHOLDER.match(template, position) if char == "<" else None
        if match is not None and _is_variable(match[1], values):
            found, value = values.get(match[1], (False, None))
            if not found and match[1] not in missing:
                missing.append(match[1])
            parts.append(_format(found, value, json_like, in_string))
            position = match.end()
            continue
        if json_like and in_string and char == "\\":
            parts.append(template[position : position + 2])
            position += 2
            continue
        if json_like and char == '"':
            in_string = not in_string
        parts.append(char)
        position += 1
    return _finish("".join(parts), json_like), missing


def _is_variable(name: str, values: dict[str, tuple[bool, Any]]) -> bool:
    # A name that could never be a variable (say <a.b>) is plain text to AWS.
    return name in values or _KEY.fullmatch(name) is not None


def _format(found: bool, value: Any, json_like: bool, in_string: bool) -> str:
    if not found:
        return ""
    if json_like and not in_string:
        return _dump(value)
    text = value if isinstance(value, str) else _dump(value)
    if in_string:
        return json.dumps(text, ensure_ascii=False)[1:-1]
    return text


def _finish(text: str, json_like: bool) -> str:
    if not json_like:
        return text
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        logger.debug("Rendered template is not JSON; delivering it as text")
        return text
    if isinstance(parsed, str):
        return text
    return _dump(parsed)

"""Checking that what the local cloud serves fits botocore's output shapes.

botocore parses leniently: a key it does not know is dropped, a wrong type
may slip through. So the gateway can check every result a handler returns,
before serializing it, against the operation's output shape: no unknown
member, every required member present, every value of its shape's type.
The check is on when ``LABKIT_STRICT_SHAPES`` is set, as it is in the tests.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from botocore.model import OperationModel, Shape

_SCALARS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "character": (str,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
    "blob": (bytes, bytearray, str),
    "timestamp": (dt.datetime, str, int, float),
}


class ShapeMismatch(ValueError):
    """A handler's result does not fit the operation's output shape."""


def strict() -> bool:
    """Say whether results are checked (``LABKIT_STRICT_SHAPES`` is set)."""
    return bool(os.environ.get("LABKIT_STRICT_SHAPES"))


def check_output(operation: OperationModel, result: dict[str, Any]) -> None:
    """Raise ShapeMismatch if ``result`` does not fit the output shape."""
    shape = operation.output_shape
    if shape is None:
        if result:
            raise ShapeMismatch(f"{operation.name} has no output, got {result!r}")
        return
    _check(result, shape, operation.name)


def _check(value: Any, shape: Shape, path: str) -> None:
    if value is None:
        return
    kind = shape.type_name
    if kind == "structure":
        _check_structure(value, shape, path)
    elif kind == "list":
        if not isinstance(value, list | tuple):
            raise ShapeMismatch(f"{path}: expected a list, got {type(value).__name__}")
        for index, item in enumerate(value):
            _check(item, shape.member, f"{path}[{index}]")  # type: ignore[attr-defined]
    elif kind == "map":
        if not isinstance(value, dict):
            raise ShapeMismatch(f"{path}: expected a map, got {type(value).__name__}")
        for key, item in value.items():
            _check(item, shape.value, f"{path}[{key!r}]")  # type: ignore[attr-defined]
    else:
        allowed = _SCALARS.get(kind, (object,))
        if kind in ("integer", "long", "float", "double") and isinstance(value, bool):
            raise ShapeMismatch(f"{path}: expected {kind}, got a bool")
        if not isinstance(value, allowed):
            message = f"{path}: expected {kind}, got {type(value).__name__} {value!r}"
            raise ShapeMismatch(message)
        enum = getattr(shape, "enum", None)
        if enum and isinstance(value, str) and value not in enum:
            raise ShapeMismatch(f"{path}: {value!r} is not one of {list(enum)}")


def _check_structure(value: Any, shape: Shape, path: str) -> None:
    if not isinstance(value, dict):
        raise ShapeMismatch(f"{path}: expected a structure, got {type(value).__name__}")
    members = shape.members  # type: ignore[attr-defined]
    unknown = sorted(set(value) - set(members) - {"ResponseMetadata"})
    if unknown:
        raise ShapeMismatch(
            f"{path}: unknown members {unknown} (allowed {sorted(members)})"
        )
    for name in shape.required_members:  # type: ignore[attr-defined]
        if value.get(name) is None:
            raise ShapeMismatch(f"{path}: required member {name!r} is missing")
    for name, item in value.items():
        if name in members:
            _check(item, members[name], f"{path}.{name}")

"""Finding criteria, sorting, paging and statistics of the GuardDuty API.

A criterion names a finding attribute by its camelCase path (``type``,
``service.archived``, ``resource.instanceDetails.instanceId``...) and holds
conditions (``Eq``, ``Gte``, ``Equals``, ``GreaterThan``...). Conditions are
checked against the finding's wire (camelCase) form; a path through a list
matches if any element matches. Times compare as epoch milliseconds, as the
API takes them. ``Matches`` takes ``*`` wildcards.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from labkit.local import findings_store as store
from labkit.local.registry import ServiceError

_INVALID = (
    "The request is rejected because an invalid or out-of-range value is "
    "specified as an input parameter."
)


def bad_request(detail: str) -> ServiceError:
    """Return GuardDuty's BadRequestException, with ``detail`` on what was wrong."""
    return ServiceError("BadRequestException", f"{_INVALID} {detail}", 400)


def page(
    items: list[Any], params: dict[str, Any], limit: int = 50
) -> tuple[list[Any], str | None]:
    """Return one page of ``items`` and the token of the next, if any."""
    size = params.get("MaxResults", limit)
    if not 1 <= size <= limit:
        raise bad_request(f"MaxResults {size!r} must be between 1 and {limit}.")
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            start = int(json.loads(base64.b64decode(token))["offset"])
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise bad_request(
                f"NextToken {token!r} is not one this API returned."
            ) from error
    end = start + size
    if end >= len(items):
        return items[start:], None
    return items[start:end], base64.b64encode(
        json.dumps({"offset": end}).encode()
    ).decode()


_CONDITIONS = {
    "Eq",
    "Neq",
    "Gt",
    "Gte",
    "Lt",
    "Lte",
    "Equals",
    "NotEquals",
    "GreaterThan",
    "GreaterThanOrEqual",
    "LessThan",
    "LessThanOrEqual",
    "Matches",
    "NotMatches",
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "Gt": lambda a, b: a > b,
    "Gte": lambda a, b: a >= b,
    "Lt": lambda a, b: a < b,
    "Lte": lambda a, b: a <= b,
}
_COMPARE |= {
    "GreaterThan": _COMPARE["Gt"],
    "GreaterThanOrEqual": _COMPARE["Gte"],
    "LessThan": _COMPARE["Lt"],
    "LessThanOrEqual": _COMPARE["Lte"],
}


def _check_field(path: str) -> None:
    member = store.shape("Finding")
    parts = path.split(".")
    for index, part in enumerate(parts):
        while member.type_name == "list":
            member = member.member  # type: ignore[attr-defined]
        names = {
            m.serialization.get("name", k): m
            for k, m in getattr(member, "members", {}).items()
        }
        if member.name == "ServiceAdditionalInfo" and index > 0:
            return  # free-form facts decoded from additionalInfo.value
        if part not in names:
            raise bad_request(
                f"The criterion field {path!r} is not a finding attribute; use "
                "camelCase paths such as 'type', 'severity', 'service.archived'."
            )
        member = names[part]


def _values(view: dict[str, Any], path: str) -> list[Any]:
    parts = path.split(".")
    current: list[Any] = [view]
    for index, part in enumerate(parts):
        found: list[Any] = []
        for item in current:
            if (
                index == 2
                and parts[:2] == ["service", "additionalInfo"]
                and part not in item
            ):
                item = json.loads(item.get("value") or "{}")
            if isinstance(item, dict) and item.get(part) is not None:
                value = item[part]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() * 1000


def _equal(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    if isinstance(value, int | float):
        return _number(wanted) == float(value)
    return str(value) == wanted


def _holds(values: list[Any], name: str, argument: Any) -> bool:
    if name in ("Eq", "Equals"):
        return any(_equal(v, w) for v in values for w in argument)
    if name in ("Neq", "NotEquals"):
        return not any(_equal(v, w) for v in values for w in argument)
    if name == "Matches":
        return any(fnmatch.fnmatchcase(str(v), w) for v in values for w in argument)
    if name == "NotMatches":
        return not any(fnmatch.fnmatchcase(str(v), w) for v in values for w in argument)
    numbers = [n for n in map(_number, values) if n is not None]
    return any(_COMPARE[name](n, float(argument)) for n in numbers)


def _matcher(criteria: dict[str, Any] | None) -> Callable[[dict[str, Any]], bool]:
    criterion = (criteria or {}).get("Criterion") or {}
    for path, condition in criterion.items():
        _check_field(path)
        unknown = set(condition) - _CONDITIONS
        if unknown:
            raise bad_request(
                f"Conditions {sorted(unknown)} are not one of {sorted(_CONDITIONS)}."
            )

    def match(view: dict[str, Any]) -> bool:
        for path, condition in criterion.items():
            values = _values(view, path)
            for name, argument in condition.items():
                if argument is not None and not _holds(values, name, argument):
                    return False
        return True

    return match


def sort_views(
    views: list[dict[str, Any]], sort: dict[str, Any] | None
) -> list[dict[str, Any]]:
    if not sort or not sort.get("AttributeName"):
        return views
    path = sort["AttributeName"]
    _check_field(path)
    present = [v for v in views if _values(v, path)]
    missing = [v for v in views if not _values(v, path)]

    def key(view: dict[str, Any]) -> tuple[int, float, str]:
        first = _values(view, path)[0]
        number = _number(first)
        return (0, number, "") if number is not None else (1, 0.0, str(first))

    present.sort(key=key, reverse=sort.get("OrderBy", "ASC") == "DESC")
    return present + missing


def query(detector: store.Detector, criteria: Any, sort: Any) -> list[dict[str, Any]]:
    """Return the wire form of the detector's findings that match, sorted."""
    match = _matcher(criteria)
    finding_shape = store.shape("Finding")
    views = [store.to_wire(f, finding_shape) for f in store.findings(detector)]
    return sort_views([v for v in views if match(v)], sort)


def _group_key(view: dict[str, Any], group_by: str) -> tuple[Any, ...]:
    resource = view.get("resource", {})
    if group_by == "ACCOUNT":
        return (view["accountId"],)
    if group_by == "DATE":
        return (view["updatedAt"][:10],)
    if group_by == "FINDING_TYPE":
        return (view["type"],)
    if group_by == "SEVERITY":
        return (float(view["severity"]),)
    ident = (
        resource.get("instanceDetails", {}).get("instanceId")
        or resource.get("accessKeyDetails", {}).get("accessKeyId")
        or next((b.get("name") for b in resource.get("s3BucketDetails", [])), None)
        or "unknown"
    )
    return (view["accountId"], ident, resource.get("resourceType", "unknown"))


def _group_row(
    key: tuple[Any, ...], views: list[dict[str, Any]], group_by: str
) -> dict[str, Any]:
    last = max(
        datetime.fromisoformat(v["updatedAt"].replace("Z", "+00:00")) for v in views
    )
    row: dict[str, Any] = {"LastGeneratedAt": last, "TotalFindings": len(views)}
    if group_by == "ACCOUNT":
        row["AccountId"] = key[0]
    elif group_by == "DATE":
        row["Date"] = datetime.fromisoformat(key[0]).replace(tzinfo=UTC)
        row["Severity"] = max(float(v["severity"]) for v in views)
    elif group_by == "FINDING_TYPE":
        row["FindingType"] = key[0]
    elif group_by == "SEVERITY":
        row["Severity"] = key[0]
    else:
        row.update(AccountId=key[0], ResourceId=key[1], ResourceType=key[2])
    return row


_GROUPED = {
    "ACCOUNT": "GroupedByAccount",
    "DATE": "GroupedByDate",
    "FINDING_TYPE": "GroupedByFindingType",
    "RESOURCE": "GroupedByResource",
    "SEVERITY": "GroupedBySeverity",
}


def statistics(views: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Return the ``FindingStatistics`` of GetFindingsStatistics for ``views``.

    Archived findings count unless the criteria left them out
    (``service.archived`` Eq ``["false"]``): the criteria alone decide.
    """
    types, group_by = (
        params.get("FindingStatisticTypes"),
        params.get("GroupBy"),
    )
    if bool(types) == bool(group_by):
        raise bad_request(
            "Give either FindingStatisticTypes or GroupBy, not both and not neither."
        )
    if types:
        if set(types) != {"COUNT_BY_SEVERITY"}:
            raise bad_request(
                f"FindingStatisticTypes {types!r} may only hold 'COUNT_BY_SEVERITY'."
            )
        counts: dict[str, int] = {}
        for view in views:
            label = str(float(view["severity"]))
            counts[label] = counts.get(label, 0) + 1
        return {"CountBySeverity": counts}
    if group_by not in _GROUPED:
        raise bad_request(f"GroupBy {group_by!r} is not one of {sorted(_GROUPED)}.")
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for view in views:
        groups.setdefault(_group_key(view, group_by), []).append(view)
    rows = [_group_row(key, members, group_by) for key, members in groups.items()]
    rows.sort(
        key=lambda row: row["TotalFindings"],
        reverse=params.get("OrderBy", "DESC") == "DESC",
    )
    limit = params.get("MaxResults", 25)
    if not 1 <= limit <= 100:
        raise bad_request(f"MaxResults {limit!r} must be between 1 and 100.")
    return {_GROUPED[group_by]: rows[:limit]}

"""GuardDuty findings as pandas DataFrames: reading, fetching and waiting.

A finding reaches the lab in several shapes: the boto3 ``GetFindings``
response (PascalCase keys), a bare finding from an S3 export or an
EventBridge ``detail`` (camelCase keys), a whole EventBridge event, or a
list of any of these. ``read_findings`` turns them all into one row per
finding object, with the same columns whatever the shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pandas as pd

from labkit.errors import ConfigError, WaitTimeoutError
from labkit.finding_fields import finding_row, pascal_case, split_type
from labkit.finding_fields import severity_label as severity_label

logger = logging.getLogger(__name__)

# The columns of every findings frame, in order.
COLUMNS = (
    "id type purpose affected family mechanism artifact severity severity_label "
    "title resource_type instance_id access_key_id user_name action_type "
    "remote_ips remote_ip domain api count first_seen last_seen updated_at "
    "archived account_id region sample"
).split()

_TIME_COLUMNS = ["first_seen", "last_seen", "updated_at"]

# GetFindings refuses more than 50 ids, and ListFindings pages at most 50.
_PAGE_SIZE = 50

# A dict is taken as a finding when one of these keys holds a value of its kind.
_FINDING_MARKERS: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "resource": Mapping,
    "service": Mapping,
    "severity": (int, float),
}


def read_findings(objects: Any) -> pd.DataFrame:
    """Read GuardDuty findings in any of their shapes into one DataFrame.

    Accepts a GetFindings response ``{"Findings": [...]}``, a bare finding in
    camelCase or PascalCase, an EventBridge event whose ``detail`` is a
    finding (also the partial ``{"detail": ...}`` form), the wrappers
    ``{"findings": [...]}`` and ``{"data": event}``, and lists mixing these.
    The key case is detected for each finding on its own. An event with an
    empty ``detail``, an event that is not a GuardDuty finding, and a dict
    that is not a finding are skipped with a warning. Repeats of one id are
    kept: ``drop_repeats`` removes them.

    Args:
        objects: A finding container, as described above.

    Returns:
        One row per finding read, with the columns ``id, type, purpose,
        affected, family, mechanism, artifact, severity, severity_label,
        title, resource_type, instance_id, access_key_id, user_name,
        action_type, remote_ips, remote_ip, domain, api, count, first_seen,
        last_seen, updated_at, archived, account_id, region, sample``.
        Missing values are NaN (NaT for times, <NA> for count); ``remote_ips``
        is a list, empty when the action has no remote address.

    Raises:
        ConfigError: An item is neither a dict nor a list.
    """
    rows = [finding_row(finding, envelope) for finding, envelope in _walk(objects, {})]
    frame = pd.DataFrame.from_records(rows, columns=COLUMNS)
    for column in _TIME_COLUMNS:
        times = pd.to_datetime(frame[column], format="ISO8601", utc=True)
        frame[column] = times.astype("datetime64[ns, UTC]")
    return frame.astype(
        {
            "severity": "float64",
            "count": "Int64",
            "archived": "bool",
            "sample": "bool",
        }
    )


def drop_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per finding id, the one with the latest ``updated_at``.

    Rows without an id are all kept. Among rows with the same ``updated_at``
    the one read last wins. The kept rows stay in their original order.

    Args:
        df: A frame from ``read_findings``.

    Returns:
        The same columns, with a fresh index.
    """
    frame = df.reset_index(drop=True)
    ordered = frame.sort_values("updated_at", kind="stable", na_position="first")
    with_id = ordered[ordered["id"].notna()]
    latest = with_id.drop_duplicates("id", keep="last").index
    keep = frame["id"].isna() | frame.index.isin(latest)
    return frame[keep].reset_index(drop=True)


def active(df: pd.DataFrame) -> pd.DataFrame:
    """Return the findings that are not archived.

    Args:
        df: A frame from ``read_findings``.

    Returns:
        The rows whose ``archived`` is False, same columns, fresh index.
    """
    return df[~df["archived"].astype(bool)].reset_index(drop=True)


def fetch_findings(
    client: Any, detector_id: str, *, criteria: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Fetch every finding of a detector, archived ones included.

    Pages ListFindings 50 ids at a time and asks GetFindings for at most 50
    ids per call. Archived findings come back with ``archived=True``; use
    ``active`` for the default view.

    Args:
        client: A boto3 GuardDuty client.
        detector_id: The detector to read.
        criteria: A ListFindings ``FindingCriteria``, passed through as is.

    Returns:
        The frame ``read_findings`` gives (see its columns).
    """
    ids = list(_list_finding_ids(client, detector_id, criteria))
    findings: list[dict[str, Any]] = []
    for start in range(0, len(ids), _PAGE_SIZE):
        batch = ids[start : start + _PAGE_SIZE]
        response = client.get_findings(DetectorId=detector_id, FindingIds=batch)
        findings.extend(response.get("Findings", []))
    logger.debug("fetched %d findings of detector %s", len(findings), detector_id)
    return read_findings({"Findings": findings})


def wait_for_findings(
    client: Any,
    detector_id: str,
    finding_types: Iterable[str],
    *,
    timeout_minutes: float,
    step_minutes: float,
    advance: Callable[[float], None],
) -> pd.DataFrame:
    """Wait until the detector has a finding of every expected type.

    Each round fetches the findings of those types; if one is still missing
    it calls ``advance(step_minutes)``, which moves the lab clock in local
    mode or sleeps in AWS, and tries again. Archived findings count.

    Args:
        client: A boto3 GuardDuty client.
        detector_id: The detector to read.
        finding_types: The exact finding types to wait for.
        timeout_minutes: How many minutes of advancing to allow in all.
        step_minutes: How many minutes to advance between two fetches.
        advance: Moves time forward by the given number of minutes.

    Returns:
        The rows of the expected types (columns as in ``read_findings``).

    Raises:
        ConfigError: A step is not positive, or the timeout is negative.
        WaitTimeoutError: A type was still missing after the timeout.
    """
    finding_types = check_finding_types(finding_types)
    _check_wait_arguments(finding_types, timeout_minutes, step_minutes)
    criteria = {"Criterion": {"type": {"Eq": list(finding_types)}}}
    waited = 0.0
    while True:
        frame = fetch_findings(client, detector_id, criteria=criteria)
        # A server that ignores the criteria must not satisfy the wait.
        frame = frame[frame["type"].isin(finding_types)].reset_index(drop=True)
        missing = [name for name in finding_types if name not in set(frame["type"])]
        if not missing:
            return frame
        if waited >= timeout_minutes:
            raise _timeout_error(missing, waited)
        step = min(step_minutes, timeout_minutes - waited)
        logger.debug("still missing %s; advancing %.1f minutes", missing, step)
        advance(step)
        waited += step


def check_finding_types(finding_types: Iterable[str]) -> list[str]:
    """Return ``finding_types`` as a list, refusing what is not a finding type.

    A type has GuardDuty's format,
    ``ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact``
    (mechanism and artifact optional), and each of its parts starts with a
    capital letter or a digit, as every documented type does: so
    ``...MaliciousIPCaller.custom`` is refused rather than waited for in vain.

    Raises:
        ConfigError: a single string was given instead of a list, or a
            value is not a finding type.
    """
    if isinstance(finding_types, str):
        check_finding_types([finding_types])
        raise ConfigError(
            f"finding types must be a list, got the string {finding_types!r}: "
            f"wrap it in a list, as in [{finding_types!r}]"
        )
    checked = list(finding_types)
    for value in checked:
        if isinstance(value, str) and value != value.strip():
            raise ConfigError(
                f"finding type {value!r} has spaces around it, so it matches no "
                f"finding: write it as {value.strip()!r}"
            )
        parts = split_type(value)
        if (
            not isinstance(value, str)
            or not all(
                _starts_capital(part) for part in parts.values() if pd.notna(part)
            )
            or pd.isna(parts["family"])
        ):
            raise ConfigError(
                f"{value!r} is not a GuardDuty finding type: a type reads "
                "Purpose:ResourceType/Family[.Mechanism][!Artifact], each part "
                "capitalised, as in 'UnauthorizedAccess:EC2/MaliciousIPCaller.Custom'"
            )
    return checked


def _starts_capital(part: str) -> bool:
    return part[:1].isupper() or part[:1].isdigit()


def _check_wait_arguments(
    finding_types: list[str], timeout_minutes: float, step_minutes: float
) -> None:
    if not finding_types:
        raise ConfigError(
            "finding_types is empty; name at least one finding type to wait for, "
            "for example the scenario's expected_findings"
        )
    if not step_minutes > 0:
        raise ConfigError(
            f"step_minutes {step_minutes!r} must be more than 0; "
            "pass a step such as 1.0"
        )
    if not timeout_minutes >= 0:
        raise ConfigError(
            f"timeout_minutes {timeout_minutes!r} must be 0 or more; "
            "pass a timeout such as 15.0"
        )


def _timeout_error(missing: list[str], waited: float) -> WaitTimeoutError:
    return WaitTimeoutError(
        f"no finding of type {', '.join(repr(name) for name in missing)} after "
        f"{waited:g} minutes; check that the attack steps ran, that the threat "
        "list is uploaded and ACTIVE (list_threat_intel_sets), then call again "
        "with a larger timeout_minutes (real GuardDuty can take 15 minutes or more)"
    )


def _list_finding_ids(
    client: Any, detector_id: str, criteria: dict[str, Any] | None
) -> Iterator[str]:
    request: dict[str, Any] = {"DetectorId": detector_id, "MaxResults": _PAGE_SIZE}
    if criteria is not None:
        request["FindingCriteria"] = criteria
    while True:
        page = client.list_findings(**request)
        yield from page.get("FindingIds", [])
        token = page.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def _walk(
    item: Any, envelope: Mapping[str, Any]
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Yield (finding, envelope) pairs from any supported container."""
    if isinstance(item, list | tuple):
        for element in item:
            yield from _walk(element, envelope)
        return
    if not isinstance(item, Mapping):
        raise ConfigError(
            f"cannot read findings from a {type(item).__name__} ({item!r:.60}); "
            "pass a dict or a list of dicts, for example a GetFindings response "
            "or json.load() of an exported finding"
        )
    if "detail" in item:
        yield from _walk_event(item)
    elif isinstance(item.get("Findings"), list):
        yield from _walk(item["Findings"], envelope)
    elif isinstance(item.get("findings"), list):
        yield from _walk(item["findings"], envelope)
    elif isinstance(item.get("data"), Mapping | list):
        # A test-case wrapper (StreamAlert keeps the event under "data").
        yield from _walk(item["data"], envelope)
    elif _is_finding(item):
        yield item, envelope
    else:
        logger.warning(
            "skipped an object that is not a GuardDuty finding (keys %s)",
            sorted(item)[:8],
        )


def _walk_event(
    event: Mapping[str, Any],
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    detail_type = event.get("detail-type")
    if detail_type is not None and detail_type != "GuardDuty Finding":
        logger.warning("skipped an event of detail-type %r", detail_type)
        return
    detail = event.get("detail")
    if not detail:
        logger.warning(
            "skipped a GuardDuty Finding event with an empty detail (event id %r)",
            event.get("id"),
        )
        return
    yield from _walk(detail, event)


def _is_finding(item: Mapping[str, Any]) -> bool:
    for name, kind in _FINDING_MARKERS.items():
        for key in (name, pascal_case(name)):
            if isinstance(item.get(key), kind) and not isinstance(item[key], bool):
                return True
    return False


def type_parts(finding_types: Iterable[str]) -> pd.DataFrame:
    """Split finding types into the five parts of GuardDuty's type format.

    ``ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact``

    Returns:
        One row per type, columns ``type, purpose, affected, family,
        mechanism, artifact``; a part the type does not have is empty.

    Raises:
        ConfigError: a single string was given, or a value is not a type.
    """
    rows = [{"type": t, **split_type(t)} for t in check_finding_types(finding_types)]
    columns = ["type", "purpose", "affected", "family", "mechanism", "artifact"]
    return pd.DataFrame(rows, columns=columns).fillna("")

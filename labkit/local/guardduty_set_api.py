"""The GuardDuty API of the local cloud: threat intel sets and IP sets.

Both kinds of set are served by the same handlers, bound to ``"threat"`` or
``"ip"`` and registered under the ``...ThreatIntelSet`` and ``...IPSet``
operation names. Creating or updating a set only marks it ``ACTIVATING``; the
lab clock reads its file at the next simulated minute
(:func:`labkit.local.findings_store.refresh`). Only the TXT format is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from labkit.list_format import parse_location
from labkit.local import findings_store as store
from labkit.local.finding_criteria import bad_request, page
from labkit.local.registry import Call, operation

logger = logging.getLogger(__name__)

_SET_API = {
    "threat": ("ThreatIntelSetId", "ThreatIntelSetIds"),
    "ip": ("IpSetId", "IpSetIds"),
}
_FORMATS = ("TXT", "STIX", "OTX_CSV", "ALIEN_VAULT", "PROOF_POINT", "FIRE_EYE")


def _check_location(location: str) -> None:
    try:
        parse_location(location)
    except ValueError as error:
        raise bad_request(
            f"Location {location!r} is not an S3 object URL such as https://s3.amazonaws.com/bucket/key."
        ) from error


def _create_set(call: Call, kind: str) -> dict[str, Any]:
    detector = store.get_called_detector(call)
    name, fmt, location = (
        call.params["Name"],
        call.params["Format"],
        call.params["Location"],
    )
    if not 1 <= len(name) <= 300:
        raise bad_request(f"Name {name!r} must be 1 to 300 characters.")
    if fmt not in _FORMATS:
        raise bad_request(f"Format {fmt!r} is not one of {list(_FORMATS)}.")
    _check_location(location)
    listed = store.add_set(
        detector,
        kind,
        name=name,
        format=fmt,
        location=location,
        status="ACTIVATING" if call.params["Activate"] else "INACTIVE",
        tags=dict(call.params.get("Tags") or {}),
        expected_bucket_owner=call.params.get("ExpectedBucketOwner"),
    )
    return {_SET_API[kind][0]: listed.set_id}


def _get_set(call: Call, kind: str) -> dict[str, Any]:
    listed = store.get_set(
        store.get_called_detector(call), kind, call.params[_SET_API[kind][0]]
    )
    out = {
        "Name": listed.name,
        "Format": listed.format,
        "Location": listed.location,
        "Status": listed.status,
        "Tags": dict(listed.tags),
    }
    if listed.expected_bucket_owner:
        out["ExpectedBucketOwner"] = listed.expected_bucket_owner
    return out


def _update_set(call: Call, kind: str) -> dict[str, Any]:
    with store.lock():
        listed = store.get_set(
            store.get_called_detector(call), kind, call.params[_SET_API[kind][0]]
        )
        reread = False
        if "Name" in call.params:
            listed.name = call.params["Name"]
        if "ExpectedBucketOwner" in call.params:
            listed.expected_bucket_owner = call.params["ExpectedBucketOwner"]
        if "Location" in call.params:
            _check_location(call.params["Location"])
            listed.location = call.params["Location"]
            reread = listed.status in ("ACTIVE", "ACTIVATING", "ERROR")
        activate = call.params.get("Activate")
        if activate is True or (reread and activate is None):
            listed.status = "ACTIVATING"
        elif activate is False:
            listed.status = (
                "DEACTIVATING"
                if listed.status in ("ACTIVE", "ACTIVATING")
                else "INACTIVE"
            )
        logger.info("updated %s set %s: %s", kind, listed.set_id, listed.status)
        return {}


def _delete_set(call: Call, kind: str) -> dict[str, Any]:
    with store.lock():
        detector = store.get_called_detector(call)
        listed = store.get_set(detector, kind, call.params[_SET_API[kind][0]])
        del detector.sets[listed.set_id]
        logger.info("deleted %s set %s", kind, listed.set_id)
        return {}


def _list_sets(call: Call, kind: str) -> dict[str, Any]:
    detector = store.get_called_detector(call)
    ids = [s.set_id for s in detector.sets.values() if s.kind == kind]
    chosen, token = page(ids, call.params)
    return {_SET_API[kind][1]: chosen, "NextToken": token}


def _bind(
    handler: Callable[[Call, str], dict[str, Any]], kind: str
) -> Callable[[Call], dict[str, Any]]:
    def serve(call: Call) -> dict[str, Any]:
        return handler(call, kind)

    return serve


def _register_sets(label: str, kind: str) -> None:
    verbs: dict[str, Callable[[Call, str], dict[str, Any]]] = {
        "Create": _create_set,
        "Get": _get_set,
        "Update": _update_set,
        "Delete": _delete_set,
    }
    for verb, handler in verbs.items():
        operation("guardduty", f"{verb}{label}")(_bind(handler, kind))
    operation("guardduty", f"List{label}s")(_bind(_list_sets, kind))


_register_sets("ThreatIntelSet", "threat")
_register_sets("IPSet", "ip")

"""EventBridge rules as a student tries them: does this pattern match?

TestEventPattern is the real API for asking whether an event pattern matches
an event; it is how a pattern is checked before a rule relies on it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from labkit.errors import EventPatternError
from labkit.lab import Lab

logger = logging.getLogger(__name__)


def guardduty_event(lab: Lab, detail: dict[str, Any]) -> dict[str, Any]:
    """Wrap a finding ``detail`` in the envelope GuardDuty's events have."""
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": lab.account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": lab.region,
        "resources": [],
        "detail": detail,
    }


def pattern_matches(
    lab: Lab, pattern: dict[str, Any] | str, detail: dict[str, Any]
) -> bool:
    """Ask EventBridge whether ``pattern`` matches a GuardDuty event with ``detail``.

    Raises:
        EventPatternError: EventBridge refused the pattern; the message says why.
    """
    text = pattern if isinstance(pattern, str) else json.dumps(pattern)
    event = json.dumps(guardduty_event(lab, detail))
    try:
        answer = lab.client("events").test_event_pattern(EventPattern=text, Event=event)
    except ClientError as error:
        if error.response["Error"]["Code"] != "InvalidEventPatternException":
            raise
        reason = error.response["Error"]["Message"]
        message = (
            f"EventBridge refused the pattern {text!r}: {reason}. Correct it and "
            "ask again; the values and matchers a pattern may use are listed in "
            "EventBridge's guide, "
            "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html"
        )
        raise EventPatternError(message) from error
    return bool(answer["Result"])

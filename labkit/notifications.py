"""The lab inbox: the alerts the lab's SNS topics sent, as e-mail would show them.

The stack subscribes an SQS queue (output ``InboxQueueUrl``) to the GuardDuty
and Config topics, so every notification an e-mail subscriber would get is
also kept there, in the SNS envelope. Reading the inbox leaves it as it was,
so a notebook can read it again, and run again from the top.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from labkit.errors import ConfigError
from labkit.lab import Lab

logger = logging.getLogger(__name__)

COLUMNS = ["received_at", "topic", "subject", "message", "message_id"]
DEFAULT_SUBJECT = "AWS Notification Message"
MAX_ROUNDS = 100

# A message received once is hidden for this long so that the next receive
# returns the following ones; all are made visible again right after reading.
_HIDE_SECONDS = 30


def read_inbox(lab: Lab, queue_url: str) -> pd.DataFrame:
    """Read every notification in the lab inbox without consuming it.

    Args:
        lab: the connected lab.
        queue_url: the inbox queue (the stack output ``InboxQueueUrl``).

    Returns:
        One row per SNS notification, oldest first, with columns
        ``received_at`` (UTC time SNS sent it), ``topic`` (the topic's
        name), ``subject`` (SNS's default e-mail subject when the publisher
        gave none, as an e-mail subscriber sees it), ``message`` (the text an
        e-mail subscriber sees:
        a transformed string keeps its surrounding quotes) and
        ``message_id`` (the SNS message id).
    """
    received = _receive_all(lab, queue_url)
    rows = [_row(message) for message in received]
    rows = [row for row in rows if row is not None]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
    frame = frame.sort_values(["received_at", "message_id"], kind="stable")
    return frame.reset_index(drop=True)


def _receive_all(lab: Lab, queue_url: str) -> list[dict[str, Any]]:
    """Receive each message once, then make them all visible again.

    A receive with no visibility timeout would keep returning the same first
    ten messages (SQS returns at most ten per call), so the messages are
    briefly hidden to page through them and then released.
    """
    sqs = lab.client("sqs")
    # Long polling asks every SQS server, where short polling samples a few
    # and can miss messages; the local cloud has one store and must not wait.
    wait = 1 if lab.mode == "aws" else 0
    found: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        for _ in range(MAX_ROUNDS):
            batch = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait,
                VisibilityTimeout=_HIDE_SECONDS,
                MessageSystemAttributeNames=["SentTimestamp"],
            ).get("Messages", [])
            handles.extend(m["ReceiptHandle"] for m in batch)
            fresh = [m for m in batch if m["MessageId"] not in found]
            found.update((m["MessageId"], m) for m in fresh)
            if not fresh:
                break
    finally:
        _release(sqs, queue_url, handles)
    return list(found.values())


def _release(sqs: Any, queue_url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(handles[start : start + 10])
        ]
        result = sqs.change_message_visibility_batch(
            QueueUrl=queue_url, Entries=entries
        )
        for failure in result.get("Failed", []):
            logger.warning(
                "An inbox message stays hidden for up to %d s: %s",
                _HIDE_SECONDS,
                failure.get("Message", failure.get("Code")),
            )


def _row(message: dict[str, Any]) -> dict[str, Any] | None:
    body = message.get("Body", "")
    sent_ms = message.get("Attributes", {}).get("SentTimestamp")
    sent = datetime.fromtimestamp(int(sent_ms) / 1000, UTC) if sent_ms else None
    try:
        envelope = json.loads(body)
    except json.JSONDecodeError:
        envelope = None
    if not isinstance(envelope, dict) or "TopicArn" not in envelope:
        # Not from SNS (or raw delivery): show the body as the message.
        return {
            "received_at": sent,
            "topic": None,
            "subject": None,
            "message": body,
            "message_id": message["MessageId"],
        }
    if envelope.get("Type") != "Notification":
        logger.debug("Skipping an SNS %s in the inbox", envelope.get("Type"))
        return None
    return {
        "received_at": envelope.get("Timestamp") or sent,
        "topic": str(envelope["TopicArn"]).rsplit(":", 1)[-1],
        "subject": envelope.get("Subject") or DEFAULT_SUBJECT,
        "message": envelope.get("Message", ""),
        "message_id": envelope.get("MessageId", message["MessageId"]),
    }


def format_email(row: Mapping[str, Any] | pd.Series) -> str:
    """Render one inbox row as the short e-mail a subscriber would receive.

    Args:
        row: a row of :func:`read_inbox` (a Series or a mapping).

    Returns:
        The e-mail's text: ``From``, ``Date``, ``Subject``, a blank line and
        the message body.

    Raises:
        ConfigError: ``row`` is a whole inbox, or not a row of one.
    """
    if isinstance(row, pd.DataFrame) or not hasattr(row, "get"):
        raise ConfigError(
            f"format_email takes one inbox row, got a {type(row).__name__}: pick "
            "a row first, as in labkit.format_email(inbox.iloc[0])"
        )
    subject = row.get("subject")
    if not isinstance(subject, str) or not subject:
        subject = DEFAULT_SUBJECT
    lines = ["From: AWS Notifications <no-reply@sns.amazonaws.com>"]
    received = row.get("received_at")
    if received is not None and not pd.isna(received):
        stamp = pd.Timestamp(received)
        stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
        lines.append(f"Date: {stamp.strftime('%a, %d %b %Y %H:%M:%S +0000')}")
    lines += [f"Subject: {subject}", "", str(row.get("message", ""))]
    return "\n".join(lines)

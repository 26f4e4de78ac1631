"""Tests of following a stack operation across polls (labkit.stack_progress)."""

from __future__ import annotations

from typing import Any

from labkit.stack_progress import StackEvents

STACK = "Security-Workshop"


def _event(
    number: int, logical: str, status: str, kind: str = "AWS::SNS::Topic"
) -> dict[str, Any]:
    return {
        "EventId": f"e{number}",
        "StackName": STACK,
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "ResourceStatus": status,
    }


class _Polls:
    """A CloudFormation client whose event history grows between polls."""

    def __init__(self, *histories: list[dict[str, Any]]) -> None:
        self._histories = list(histories)
        self.current: list[dict[str, Any]] = []

    def poll(self) -> None:
        self.current = self._histories.pop(0)

    def get_paginator(self, name: str) -> _Polls:
        return self

    def paginate(self, StackName: str) -> list[dict[str, Any]]:  # noqa: N803
        return [{"StackEvents": list(reversed(self.current))}]


def test_resource_spanning_two_polls_is_counted() -> None:
    """A resource started in one poll and finished in the next counts as done."""
    start = _event(1, STACK, "CREATE_IN_PROGRESS", "AWS::CloudFormation::Stack")
    began = _event(2, "Topic", "CREATE_IN_PROGRESS")
    ended = _event(3, "Topic", "CREATE_COMPLETE")
    other = _event(4, "Queue", "CREATE_IN_PROGRESS", "AWS::SQS::Queue")
    client = _Polls([start, began], [start, began, ended, other])
    events = StackEvents()

    client.poll()
    events.collect(client, STACK)
    assert events.done() == 0
    client.poll()
    events.collect(client, STACK)

    assert events.done() == 1
    assert [e["EventId"] for e in events.events] == ["e1", "e2", "e3", "e4"]


def test_first_failure_is_the_earliest() -> None:
    """The failure reported is the first resource that failed, across polls."""
    start = _event(1, STACK, "CREATE_IN_PROGRESS", "AWS::CloudFormation::Stack")
    first = {**_event(2, "Topic", "CREATE_FAILED"), "ResourceStatusReason": "first"}
    later = {
        **_event(3, "Queue", "CREATE_FAILED", "AWS::SQS::Queue"),
        "ResourceStatusReason": "later",
    }
    client = _Polls([start, first], [start, first, later])
    events = StackEvents()
    for _ in range(2):
        client.poll()
        events.collect(client, STACK)
    assert events.first_failure().startswith(
        "Topic (AWS::SNS::Topic) CREATE_FAILED: first"
    )

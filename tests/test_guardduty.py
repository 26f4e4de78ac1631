"""Turning GuardDuty on for the lab, on the real local cloud."""

from __future__ import annotations

import logging

import pytest

import labkit


def test_enable_guardduty_turns_on_a_disabled_detector(
    fresh_cloud: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A suspended detector is reused and ENABLED; its frequency and tags stay."""
    lab = labkit.connect()
    guardduty = lab.client("guardduty")
    detector_id = guardduty.create_detector(
        Enable=False, FindingPublishingFrequency="SIX_HOURS", Tags={"team": "sec"}
    )["DetectorId"]

    with caplog.at_level(logging.INFO, "labkit.guardduty"):
        assert labkit.enable_guardduty(lab) == (detector_id, False)

    detector = guardduty.get_detector(DetectorId=detector_id)
    assert detector["Status"] == "ENABLED"
    assert detector["FindingPublishingFrequency"] == "SIX_HOURS"
    assert detector["Tags"] == {"team": "sec"}
    assert guardduty.list_detectors()["DetectorIds"] == [detector_id]
    assert f"Enabled GuardDuty detector {detector_id}" in caplog.text


def test_enable_guardduty_leaves_an_enabled_detector_alone(fresh_cloud: str) -> None:
    """An enabled detector is reused as it is, without an UpdateDetector call."""
    lab = labkit.connect()
    guardduty = lab.client("guardduty")
    detector_id = guardduty.create_detector(Enable=True)["DetectorId"]
    before = guardduty.get_detector(DetectorId=detector_id)["UpdatedAt"]
    lab.advance(1)

    assert labkit.enable_guardduty(lab) == (detector_id, False)

    after = guardduty.get_detector(DetectorId=detector_id)
    assert (after["Status"], after["UpdatedAt"]) == ("ENABLED", before)

"""Tests of labkit.scenarios: the four scenario records and their lookup."""

from __future__ import annotations

import re

import pytest

from labkit.errors import LabError, UnknownScenarioError
from labkit.scenarios import SCENARIOS, Scenario, get_scenario, scenarios_frame


def test_scenarios_are_the_four_of_the_design() -> None:
    """The ids, numbers and notebooks follow the design's scenario table."""
    assert [s.id for s in SCENARIOS] == [
        "compromised-ec2-instance",
        "compromised-iam-credentials",
        "iam-role-credential-exfiltration",
        "cloudwatch-alarms",
    ]
    assert [s.number for s in SCENARIOS] == [1, 2, 3, 4]
    for scenario in SCENARIOS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", scenario.id)
        assert scenario.notebook == f"{scenario.number:02d}-{scenario.id}.ipynb"


def test_scenarios_name_their_rules_and_findings() -> None:
    """Each GuardDuty scenario names its rule and the finding types it raises."""
    ec2, iam, role, alarms = SCENARIOS
    assert ec2.rule_name == "GuardDuty-Event-EC2-MaliciousIPCaller"
    assert ec2.expected_findings == ("UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",)
    assert iam.rule_name == "GuardDuty-Event-IAM-MaliciousIPCaller"
    assert set(iam.expected_findings) == {
        "Recon:IAMUser/MaliciousIPCaller.Custom",
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
    }
    assert iam.rule_targets == ("SNS",)
    assert role.rule_name == "GuardDuty-Event-IAMUser-InstanceCredentialExfiltration"
    assert role.expected_findings[0].endswith(
        "InstanceCredentialExfiltration.OutsideAWS"
    )
    assert alarms.expected_findings == ()
    assert alarms.rule_name is None


def test_get_scenario_by_id_number_or_digit_string() -> None:
    """A scenario is found by its id, its number, or its number as text."""
    by_id = get_scenario("iam-role-credential-exfiltration")
    assert isinstance(by_id, Scenario)
    assert get_scenario(3) is by_id
    assert get_scenario("3") is by_id


def test_get_scenario_unknown_lists_valid_ids() -> None:
    """An unknown scenario raises a LabError that is a KeyError, listing ids."""
    with pytest.raises(KeyError) as caught:
        get_scenario("ransomware")
    error = caught.value
    assert isinstance(error, UnknownScenarioError)
    assert isinstance(error, LabError)
    message = str(error)
    assert "'ransomware'" in message
    for scenario in SCENARIOS:
        assert repr(scenario.id) in message
    assert not message.startswith('"')


def test_get_scenario_unknown_number_raises() -> None:
    """A number outside 1 to 4 is refused too."""
    with pytest.raises(UnknownScenarioError, match="5"):
        get_scenario(5)


def test_scenario_records_are_frozen() -> None:
    """Records cannot be changed by a notebook by accident."""
    with pytest.raises(AttributeError):
        SCENARIOS[0].title = "changed"  # type: ignore[misc]


def test_scenarios_frame_has_one_row_each() -> None:
    """The table has one row per scenario and tuple fields joined as text."""
    frame = scenarios_frame()
    assert len(frame) == 4
    assert list(frame.columns[:3]) == ["id", "number", "title"]
    assert frame.loc[1, "expected_findings"] == (
        "Recon:IAMUser/MaliciousIPCaller.Custom, "
        "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"
    )
    assert frame.loc[0, "rule_targets"] == "Lambda, SNS"

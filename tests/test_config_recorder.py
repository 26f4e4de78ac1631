"""Deploying into an account that already records with AWS Config."""

from __future__ import annotations

import labkit


def test_deploy_keeps_the_accounts_recorder(fresh_cloud: str) -> None:
    """The stack makes no recorder of its own and its two rules still exist."""
    lab = labkit.connect()
    config = lab.client("config")
    config.put_configuration_recorder(
        ConfigurationRecorder={
            "name": "account-recorder",
            "roleARN": f"arn:aws:iam::{lab.account_id}:role/account-config",
        }
    )
    detector_id, _ = labkit.enable_guardduty(lab)

    labkit.deploy_stack(lab, detector_id=detector_id, progress=False)

    recorders = config.describe_configuration_recorders()["ConfigurationRecorders"]
    assert [r["name"] for r in recorders] == ["account-recorder"]
    rules = {r["ConfigRuleName"] for r in config.describe_config_rules()["ConfigRules"]}
    assert rules == {"restricted-ssh", "encrypted-volumes"}
    described = lab.client("cloudformation").describe_stacks(StackName=lab.stack_name)
    parameters = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in described["Stacks"][0]["Parameters"]
    }
    assert parameters["UseExistingConfigRecorder"] == "true"
    kinds = set(labkit.stack_resources(lab)["type"])
    assert "AWS::Config::ConfigurationRecorder" not in kinds
    assert "AWS::Config::DeliveryChannel" not in kinds

"""labkit: the helpers behind the GuardDuty hands-on lab notebooks.

A notebook starts with ``lab = labkit.connect()``: the local cloud by default,
or ``labkit.connect("aws")`` for a real account. Everything else speaks the
real AWS APIs through ``lab.client(...)``.
"""

import importlib
from typing import Any

# The modules notebooks reach as ``labkit.<module>`` without importing them.
from labkit import findings, inventory, rules, threatlist
from labkit.errors import (
    ConfigError,
    EventPatternError,
    LabError,
    LocalCloudError,
    NotDeployedError,
    PortInUseError,
    StackError,
    ThreatListError,
    UnknownScenarioError,
    WaitTimeoutError,
)
from labkit.findings import drop_repeats, read_findings, severity_label
from labkit.guardduty import (
    activate_threat_list,
    enable_guardduty,
    finding_json,
    lab_findings,
    wait_for_findings,
)
from labkit.lab import Lab, connect
from labkit.notifications import format_email, read_inbox
from labkit.preparation import prepare_lab
from labkit.scenarios import SCENARIOS, Scenario, get_scenario, scenarios_frame
from labkit.stack import delete_stack, deploy_stack, stack_outputs, stack_resources

__all__ = [
    "SCENARIOS",
    "ConfigError",
    "EventPatternError",
    "Lab",
    "LabError",
    "LocalCloudError",
    "NotDeployedError",
    "PortInUseError",
    "Scenario",
    "StackError",
    "ThreatListError",
    "UnknownScenarioError",
    "WaitTimeoutError",
    "activate_threat_list",
    "connect",
    "delete_stack",
    "deploy_stack",
    "drop_repeats",
    "figures",
    "findings",
    "inventory",
    "enable_guardduty",
    "finding_json",
    "format_email",
    "get_scenario",
    "lab_findings",
    "prepare_lab",
    "read_findings",
    "read_inbox",
    "rules",
    "scenarios_frame",
    "severity_label",
    "stack_outputs",
    "stack_resources",
    "threatlist",
    "wait_for_findings",
]


def __getattr__(name: str) -> Any:
    # labkit.figures loads matplotlib and IPython: only when a notebook draws,
    # not in the local cloud and Lambda workers, which import labkit too.
    if name == "figures":
        return importlib.import_module("labkit.figures")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")

"""The lab's four scenarios, each declared once as a record.

Notebooks, tests and the command line read these records rather than
repeating the details: what the environment does, what the attacker does,
which CloudTrail events and GuardDuty finding types to expect, which
EventBridge rule reacts and how the threat is remediated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from labkit.errors import UnknownScenarioError


@dataclass(frozen=True)
class Scenario:
    """One scenario of the lab.

    Attributes:
        id: kebab-case identifier, such as ``"compromised-ec2-instance"``.
        number: the scenario's number in the workshop (1 to 4).
        title: a short human title.
        environment: what the deployed environment does on its own.
        attacker: what the (simulated) attacker does.
        expected_findings: GuardDuty finding types the scenario should raise.
        cloudtrail_events: API calls (CloudTrail event names) to look for.
        rule_name: the EventBridge rule that reacts, if any.
        rule_targets: where the reaction goes (Lambda, SNS...).
        remediation: how the threat is contained.
        notebook: the notebook file that walks through it.
    """

    id: str
    number: int
    title: str
    environment: str
    attacker: str
    expected_findings: tuple[str, ...]
    cloudtrail_events: tuple[str, ...]
    rule_name: str | None
    rule_targets: tuple[str, ...]
    remediation: str
    notebook: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        id="compromised-ec2-instance",
        number=1,
        title="Compromised EC2 instance",
        environment=(
            "The instance named 'Compromised Instance: Scenario 1' keeps "
            "pinging the Elastic IP of the malicious instance, and the lab's "
            "custom threat list names that address as malicious."
        ),
        attacker=(
            "Runs the host at the other end: the compromised instance keeps "
            "reaching out to an address on the threat list, as malware calling "
            "home would, and GuardDuty sees it in the VPC flow logs."
        ),
        expected_findings=("UnauthorizedAccess:EC2/MaliciousIPCaller.Custom",),
        cloudtrail_events=("ModifyInstanceAttribute",),
        rule_name="GuardDuty-Event-EC2-MaliciousIPCaller",
        rule_targets=("Lambda", "SNS"),
        remediation=(
            "A Lambda function moves the instance out of its security groups "
            "into the forensic security group, which allows no traffic in or "
            "out, and reports what it did."
        ),
        notebook="01-compromised-ec2-instance.ipynb",
    ),
    Scenario(
        id="compromised-iam-credentials",
        number=2,
        title="Compromised IAM credentials",
        environment=(
            "The malicious instance holds the access key of the IAM user "
            "Security-Workshop-Compromised-Simulated and uses it to explore "
            "DynamoDB and read Parameter Store."
        ),
        attacker=(
            "Calls AWS APIs with a stolen long-term user key from an address "
            "on the threat list: listing and describing first, then reading "
            "a secret parameter."
        ),
        expected_findings=(
            "Recon:IAMUser/MaliciousIPCaller.Custom",
            "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
        ),
        cloudtrail_events=(
            "ListTables",
            "DescribeTable",
            "DescribeParameters",
            "GetParameters",
        ),
        rule_name="GuardDuty-Event-IAM-MaliciousIPCaller",
        rule_targets=("SNS",),
        remediation=(
            "Manual, by choice of the security team: deactivate the user's "
            "access key (UpdateAccessKey with Status Inactive) after looking "
            "at what else it did in CloudTrail."
        ),
        notebook="02-compromised-iam-credentials.ipynb",
    ),
    Scenario(
        id="iam-role-credential-exfiltration",
        number=3,
        title="IAM role credential exfiltration",
        environment=(
            "The instance named 'Compromised Instance: Scenario 3' runs with "
            "the role Security-Workshop-EC2-Compromised, whose temporary "
            "credentials anyone on the instance can read from its metadata "
            "service."
        ),
        attacker=(
            "You: read the role's credentials on the instance through Systems "
            "Manager, then use them from your own machine, outside AWS, to "
            "try IAM, DynamoDB and Parameter Store."
        ),
        expected_findings=(
            "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
        ),
        cloudtrail_events=(
            "GetUser",
            "CreateUser",
            "ListTables",
            "DescribeTable",
            "Scan",
            "PutItem",
            "DeleteTable",
            "DescribeParameters",
            "GetParameters",
            "DeleteParameter",
        ),
        rule_name="GuardDuty-Event-IAMUser-InstanceCredentialExfiltration",
        rule_targets=("Lambda", "SNS"),
        remediation=(
            "A Lambda function adds the RevokeOldSessions policy to the role: "
            "it denies everything to sessions issued before the moment of "
            "remediation, so the stolen credentials stop working."
        ),
        notebook="03-iam-role-credential-exfiltration.ipynb",
    ),
    Scenario(
        id="cloudwatch-alarms",
        number=4,
        title="CloudWatch alarms on web server logs",
        environment=(
            "Two SecureServer instances run Apache and ship their access logs "
            "to the log group /securitydemo/httpd/access; the ControlServer "
            "sends them ordinary page requests."
        ),
        attacker=(
            "The ControlServer also scans both servers for a WordPress login "
            "page, getting bursts of HTTP 404 answers; GuardDuty does not "
            "look at application logs, so no finding is raised."
        ),
        expected_findings=(),
        cloudtrail_events=("PutMetricFilter", "PutMetricAlarm"),
        rule_name=None,
        rule_targets=("SNS (Config topic)",),
        remediation=(
            "None automated: you build a metric filter on 4XX responses and "
            "an alarm that notifies the Config topic, then discuss what an "
            "alarm action could do (block the scanner, add capacity)."
        ),
        notebook="04-cloudwatch-alarms.ipynb",
    ),
)

_BY_ID = {scenario.id: scenario for scenario in SCENARIOS}
_BY_NUMBER = {scenario.number: scenario for scenario in SCENARIOS}


def get_scenario(id_or_number: str | int) -> Scenario:
    """Return the scenario with this id (or number, 1 to 4).

    Raises:
        UnknownScenarioError: no scenario matches; it is also a KeyError.
    """
    if isinstance(id_or_number, int) and not isinstance(id_or_number, bool):
        found = _BY_NUMBER.get(id_or_number)
    else:
        text = str(id_or_number).strip()
        found = _BY_NUMBER.get(int(text)) if text.isdigit() else _BY_ID.get(text)
    if found is None:
        valid = ", ".join(f"{s.number} {s.id!r}" for s in SCENARIOS)
        raise UnknownScenarioError(
            f"no scenario {id_or_number!r}; valid ones are {valid}: "
            "pass one of those ids or numbers"
        )
    return found


def scenarios_frame() -> pd.DataFrame:
    """Return every scenario as a table, one row each.

    Returns:
        Columns ``id``, ``number``, ``title``, ``environment``, ``attacker``,
        ``expected_findings``, ``cloudtrail_events``, ``rule_name``,
        ``rule_targets``, ``remediation``, ``notebook``; the tuple fields are
        joined with ``", "``.
    """
    rows = []
    for scenario in SCENARIOS:
        row = asdict(scenario)
        for name in ("expected_findings", "cloudtrail_events", "rule_targets"):
            row[name] = ", ".join(row[name])
        rows.append(row)
    return pd.DataFrame(rows)

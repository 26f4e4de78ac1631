"""Every operation the local cloud serves in moto's place, called through boto3.

The test session's local cloud checks each result against botocore's output
shape before serializing it (``LABKIT_STRICT_SHAPES``), and answers a
misfit with a 500; boto3 then parses each answer. So each call below passing
means that operation's response fits its shape and parses.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import pytest

import labkit
from labkit.lab import Lab
from labkit.local import app, control
from labkit.local.registry import OPERATIONS

CALLED: set[tuple[str, str]] = set()

TEMPLATE = {
    "Parameters": {"Suffix": {"Type": "String", "Default": "a"}},
    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}},
}


class _Recorder:
    """Wraps a client and records each operation it calls."""

    def __init__(self, client: Any, service: str) -> None:
        self._client = client
        self._service = service

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if operation is None:
            return method

        def call(**params: Any) -> Any:
            CALLED.add((self._service, operation))
            return method(**params)

        return call


@pytest.fixture(scope="module")
def lab(local_cloud: str) -> Lab:
    """A lab on a reset local cloud."""
    import urllib.request

    reset = urllib.request.Request(f"{local_cloud}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=30).close()
    return labkit.connect()


def _client(lab: Lab, service: str) -> Any:
    return _Recorder(lab.client(service), service)


def test_guardduty_operations(lab: Lab) -> None:
    """Detectors, lists, tags and findings all answer in their shapes."""
    gd = _client(lab, "guardduty")
    s3 = lab.client("s3")
    s3.create_bucket(
        Bucket="shapes-lists",
        CreateBucketConfiguration={"LocationConstraint": lab.region},
    )
    s3.put_object(Bucket="shapes-lists", Key="t.txt", Body=b"198.51.100.7\n")
    location = "https://s3.amazonaws.com/shapes-lists/t.txt"

    detector = gd.create_detector(Enable=True)["DetectorId"]
    arn = f"arn:aws:guardduty:{lab.region}:{lab.account_id}:detector/{detector}"
    assert gd.get_detector(DetectorId=detector)["Status"] == "ENABLED"
    gd.update_detector(DetectorId=detector, FindingPublishingFrequency="ONE_HOUR")
    assert gd.list_detectors()["DetectorIds"] == [detector]
    gd.tag_resource(ResourceArn=arn, Tags={"k": "v"})
    assert gd.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"k": "v"}
    gd.untag_resource(ResourceArn=arn, TagKeys=["k"])

    threat = gd.create_threat_intel_set(
        DetectorId=detector, Name="t", Format="TXT", Location=location, Activate=True
    )["ThreatIntelSetId"]
    assert gd.get_threat_intel_set(DetectorId=detector, ThreatIntelSetId=threat)["Name"]
    gd.update_threat_intel_set(
        DetectorId=detector, ThreatIntelSetId=threat, Activate=False
    )
    assert gd.list_threat_intel_sets(DetectorId=detector)["ThreatIntelSetIds"] == [
        threat
    ]
    gd.delete_threat_intel_set(DetectorId=detector, ThreatIntelSetId=threat)

    trusted = gd.create_ip_set(
        DetectorId=detector, Name="i", Format="TXT", Location=location, Activate=True
    )["IpSetId"]
    assert gd.get_ip_set(DetectorId=detector, IpSetId=trusted)["Name"] == "i"
    gd.update_ip_set(DetectorId=detector, IpSetId=trusted, Activate=False)
    assert gd.list_ip_sets(DetectorId=detector)["IpSetIds"] == [trusted]
    gd.delete_ip_set(DetectorId=detector, IpSetId=trusted)

    gd.create_sample_findings(DetectorId=detector, FindingTypes=["Recon:EC2/Portscan"])
    ids = gd.list_findings(DetectorId=detector)["FindingIds"]
    assert len(ids) == 1
    finding = gd.get_findings(DetectorId=detector, FindingIds=ids)["Findings"][0]
    assert finding["Type"] == "Recon:EC2/Portscan"
    gd.archive_findings(DetectorId=detector, FindingIds=ids)
    gd.unarchive_findings(DetectorId=detector, FindingIds=ids)
    statistics = gd.get_findings_statistics(
        DetectorId=detector, FindingStatisticTypes=["COUNT_BY_SEVERITY"]
    )
    assert sum(statistics["FindingStatistics"]["CountBySeverity"].values()) == 1
    gd.delete_detector(DetectorId=detector)


def test_events_operations(lab: Lab) -> None:
    """PutEvents and TestEventPattern answer in their shapes."""
    events = _client(lab, "events")
    sent = events.put_events(
        Entries=[{"Source": "lab.shapes", "DetailType": "t", "Detail": "{}"}]
    )
    assert sent["FailedEntryCount"] == 0
    event = {
        "id": "1",
        "account": lab.account_id,
        "source": "lab.shapes",
        "time": "2026-01-01T00:00:00Z",
        "region": lab.region,
        "detail-type": "t",
        "detail": {},
    }
    answer = events.test_event_pattern(
        EventPattern=json.dumps({"source": ["lab.shapes"]}), Event=json.dumps(event)
    )
    assert answer["Result"] is True


def test_cloudformation_operations(lab: Lab) -> None:
    """Every stack operation, from validation to deletion, answers in its shape."""
    cfn = _client(lab, "cloudformation")
    body = json.dumps(TEMPLATE)
    assert cfn.validate_template(TemplateBody=body)["Parameters"]
    stack_id = cfn.create_stack(StackName="shapes", TemplateBody=body)["StackId"]
    assert lab.endpoint_url is not None
    settled = control.request(lab.endpoint_url, "cloudformation/settle", {"timeout": 5})
    assert settled == {"settled": True}

    assert cfn.describe_stacks(StackName="shapes")["Stacks"][0]["Outputs"]
    assert cfn.describe_stack_events(StackName="shapes")["StackEvents"]
    assert cfn.describe_stack_resources(StackName="shapes")["StackResources"]
    assert cfn.describe_stack_resource(StackName="shapes", LogicalResourceId="Topic")
    assert cfn.list_stack_resources(StackName="shapes")["StackResourceSummaries"]
    assert cfn.list_stacks()["StackSummaries"]
    assert cfn.get_template(StackName="shapes")["TemplateBody"]
    with pytest.raises(lab.client("cloudformation").exceptions.ClientError):
        cfn.update_stack(StackName="shapes", TemplateBody=body)
    cfn.delete_stack(StackName=stack_id)


def test_lambda_operations(
    lab: Lab, make_echo_function: Callable[[Lab, str], str]
) -> None:
    """Invoke and GetFunction answer in their shapes."""
    make_echo_function(lab, "shapes-echo")
    functions = _client(lab, "lambda")
    answer = functions.invoke(FunctionName="shapes-echo", Payload=b'{"n": 1}')
    assert json.loads(answer["Payload"].read()) == {"n": 1}
    assert functions.get_function(FunctionName="shapes-echo")["Configuration"]


def test_every_served_operation_was_called() -> None:
    """The calls above cover every operation the local cloud serves itself."""
    for name in app.SERVICE_MODULES:
        importlib.import_module(name)
    assert set(OPERATIONS) - CALLED == set()

"""AWS-mode paths checked against botocore's service models with Stubber.

No AWS account is reachable from CI, so each call labkit makes in aws mode is
stubbed: Stubber rejects parameters and responses that do not fit the model.
"""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from labkit import remediation, stack, stack_progress, threatlist
from labkit.errors import LabError, NotDeployedError, StackError, WaitTimeoutError
from labkit.guardduty import activate_threat_list, enable_guardduty
from labkit.lab import Lab
from labkit.preparation import prepare_lab

ACCOUNT = "111122223333"
REGION = "eu-west-2"
BUCKET = f"labkit-artifacts-{ACCOUNT}-{REGION}"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/Security-Workshop/1"
WHEN = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  DetectorId: {Type: String}
Resources:
  Topic:
    Type: AWS::SNS::Topic
  Queue:
    Type: AWS::SQS::Queue
  Subscription:
    Type: AWS::SNS::Subscription
    Properties:
      TopicArn: !Ref Topic
      Endpoint: !GetAtt Queue.Arn
      Protocol: sqs
Outputs:
  InboxQueueUrl:
    Value: !Sub "${Queue}"
"""
OUTPUTS = [{"OutputKey": "InboxQueueUrl", "OutputValue": "https://sqs/inbox"}]


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Lab:
    """An aws-mode lab with a small template."""
    template = tmp_path / "security-workshop.yaml"
    template.write_text(TEMPLATE)
    monkeypatch.setattr(stack, "TEMPLATE_PATH", template)
    monkeypatch.setattr(stack_progress, "_sleep", lambda seconds: None)
    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
        aws_secret_access_key="example",
        region_name=REGION,
    )
    return Lab("aws", session=session)


def _stubbers(lab: Lab, *services: str) -> dict[str, Stubber]:
    return {name: Stubber(lab.client(name)) for name in services}


def _code_keys(lab: Lab) -> dict[str, str]:
    keys = {}
    for parameter, module in remediation.CODE_KEY_PARAMETERS.items():
        digest = hashlib.sha256(remediation.build_zip(module))
        keys[parameter] = f"remediation/{module}/{digest.hexdigest()}.zip"
    return keys


def _stack(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackId": STACK_ID,
                "StackName": "Security-Workshop",
                "CreationTime": WHEN,
                "StackStatus": status,
                **extra,
            }
        ]
    }


def _event(n: int, logical: str, status: str, reason: str = "") -> dict[str, Any]:
    kind = "AWS::CloudFormation::Stack" if logical == "Security-Workshop" else "X"
    event = {
        "StackId": STACK_ID,
        "EventId": f"e{n}",
        "StackName": "Security-Workshop",
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "ResourceStatus": status,
        "Timestamp": WHEN,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def _missing(stubber: Stubber, operation: str) -> None:
    stubber.add_client_error(
        operation,
        service_error_code="ValidationError",
        service_message="Stack with id Security-Workshop does not exist",
        http_status_code=400,
    )


def _stub_packaging(stubs: dict[str, Stubber], lab: Lab, *, exists: bool) -> None:
    stubs["sts"].add_response(
        "get_caller_identity", {"Account": ACCOUNT, "Arn": "arn:aws:iam::x:user/a"}
    )
    s3 = stubs["s3"]
    if exists:
        s3.add_response("head_bucket", {}, {"Bucket": BUCKET})
    else:
        s3.add_client_error("head_bucket", "404", http_status_code=404)
        s3.add_response(
            "create_bucket",
            {"Location": f"/{BUCKET}"},
            {
                "Bucket": BUCKET,
                "CreateBucketConfiguration": {"LocationConstraint": REGION},
            },
        )
    for key in _code_keys(lab).values():
        if exists:
            s3.add_response("head_object", {}, {"Bucket": BUCKET, "Key": key})
            continue
        s3.add_client_error("head_object", "404", http_status_code=404)
        s3.add_response(
            "put_object",
            {"ETag": '"x"'},
            {
                "Bucket": BUCKET,
                "Key": key,
                "Body": ANY,
                "ContentType": "application/zip",
            },
        )


def _stub_create(
    stubs: dict[str, Stubber],
    lab: Lab,
    *,
    recorders: list[dict[str, Any]] | None = None,
    template: str = TEMPLATE,
) -> None:
    _stub_packaging(stubs, lab, exists=False)
    cfn = stubs["cloudformation"]
    _missing(cfn, "describe_stacks")
    stubs["config"].add_response(
        "describe_configuration_recorders", {"ConfigurationRecorders": recorders or []}
    )
    parameters = [{"ParameterKey": "DetectorId", "ParameterValue": "det1"}]
    parameters.append({"ParameterKey": "ArtifactBucket", "ParameterValue": BUCKET})
    parameters += [
        {"ParameterKey": k, "ParameterValue": v} for k, v in _code_keys(lab).items()
    ]
    parameters.append({"ParameterKey": "EmailAddress", "ParameterValue": "a@b.test"})
    if recorders:
        parameters.append(
            {"ParameterKey": "UseExistingConfigRecorder", "ParameterValue": "true"}
        )
    cfn.add_response(
        "create_stack",
        {"StackId": STACK_ID},
        {
            "StackName": "Security-Workshop",
            "TemplateBody": template,
            "Parameters": parameters,
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Tags": [{"Key": "labkit", "Value": "security-workshop"}],
        },
    )
    first = [
        _event(2, "Topic", "CREATE_COMPLETE"),
        _event(1, "Topic", "CREATE_IN_PROGRESS"),
        _event(0, "Security-Workshop", "CREATE_IN_PROGRESS"),
    ]
    cfn.add_response("describe_stacks", _stack("CREATE_IN_PROGRESS"))
    cfn.add_response("describe_stack_events", {"StackEvents": first})
    done = [
        _event(5, "Security-Workshop", "CREATE_COMPLETE"),
        _event(4, "Subscription", "CREATE_COMPLETE"),
        _event(3, "Queue", "CREATE_COMPLETE"),
    ]
    cfn.add_response("describe_stacks", _stack("CREATE_COMPLETE", Outputs=OUTPUTS))
    cfn.add_response("describe_stack_events", {"StackEvents": done + first})


def test_enable_guardduty_reuses_existing_detector(lab: Lab) -> None:
    """An existing detector is reused, not re-created nor changed."""
    stubs = _stubbers(lab, "guardduty")
    stubs["guardduty"].add_response("list_detectors", {"DetectorIds": ["det1"]})
    stubs["guardduty"].add_response(
        "get_detector",
        {"ServiceRole": "arn:aws:iam::x:role/gd", "Status": "ENABLED", "Tags": {}},
        {"DetectorId": "det1"},
    )
    with stubs["guardduty"]:
        assert enable_guardduty(lab) == ("det1", False)
    stubs["guardduty"].assert_no_pending_responses()


def test_enable_guardduty_turns_on_a_disabled_detector(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """A reused DISABLED detector is tagged labkit=enabled, then Enable=True alone."""
    stubs = _stubbers(lab, "guardduty", "sts")
    stubs["guardduty"].add_response("list_detectors", {"DetectorIds": ["det1"]})
    stubs["guardduty"].add_response(
        "get_detector",
        {
            "ServiceRole": "r",
            "Status": "DISABLED",
            "FindingPublishingFrequency": "SIX_HOURS",
            "Tags": {"team": "sec"},
        },
        {"DetectorId": "det1"},
    )
    stubs["sts"].add_response(
        "get_caller_identity", {"Account": ACCOUNT, "Arn": "arn:aws:iam::x:user/a"}
    )
    # The record comes first: a detector left on untagged would never be
    # turned off by cleanup.
    stubs["guardduty"].add_response(
        "tag_resource",
        {},
        {
            "ResourceArn": f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/det1",
            "Tags": {"labkit": "enabled"},
        },
    )
    # Only Enable: the account's frequency, data sources and tags are kept.
    stubs["guardduty"].add_response(
        "update_detector", {}, {"DetectorId": "det1", "Enable": True}
    )
    with (
        stubs["guardduty"],
        stubs["sts"],
        caplog.at_level(logging.INFO, "labkit.guardduty"),
    ):
        assert enable_guardduty(lab) == ("det1", False)
    stubs["guardduty"].assert_no_pending_responses()
    stubs["sts"].assert_no_pending_responses()
    changes = [r for r in caplog.records if r.name == "labkit.guardduty"]
    assert [r.levelno for r in changes] == [logging.INFO, logging.INFO]
    assert "det1 labkit=enabled" in changes[0].getMessage()
    assert "Enabled GuardDuty detector det1" in changes[1].getMessage()
    assert "DISABLED" in changes[1].getMessage()


def test_enable_guardduty_keeps_the_created_tag_of_a_lab_detector(lab: Lab) -> None:
    """A DISABLED detector tagged labkit=created is turned on and not tagged again."""
    stubs = _stubbers(lab, "guardduty")
    stubs["guardduty"].add_response("list_detectors", {"DetectorIds": ["det1"]})
    stubs["guardduty"].add_response(
        "get_detector",
        {"ServiceRole": "r", "Status": "DISABLED", "Tags": {"labkit": "created"}},
        {"DetectorId": "det1"},
    )
    stubs["guardduty"].add_response(
        "update_detector", {}, {"DetectorId": "det1", "Enable": True}
    )
    with stubs["guardduty"]:
        assert enable_guardduty(lab) == ("det1", False)
    stubs["guardduty"].assert_no_pending_responses()


def test_enable_guardduty_tags_in_the_regions_partition() -> None:
    """The detector's ARN names its region's partition, as TagResource needs."""
    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
        aws_secret_access_key="example",
        region_name="cn-north-1",
    )
    china = Lab("aws", region="cn-north-1", session=session)
    stubs = _stubbers(china, "guardduty", "sts")
    stubs["guardduty"].add_response("list_detectors", {"DetectorIds": ["det1"]})
    stubs["guardduty"].add_response(
        "get_detector", {"ServiceRole": "r", "Status": "DISABLED"}
    )
    stubs["sts"].add_response(
        "get_caller_identity", {"Account": ACCOUNT, "Arn": "arn:aws-cn:iam::x:user/a"}
    )
    arn = f"arn:aws-cn:guardduty:cn-north-1:{ACCOUNT}:detector/det1"
    stubs["guardduty"].add_response(
        "tag_resource", {}, {"ResourceArn": arn, "Tags": {"labkit": "enabled"}}
    )
    stubs["guardduty"].add_response("update_detector", {})
    with stubs["guardduty"], stubs["sts"]:
        assert enable_guardduty(china) == ("det1", False)
    stubs["guardduty"].assert_no_pending_responses()


def test_enable_guardduty_creates_tagged_detector(lab: Lab) -> None:
    """With no detector, one is created, enabled and tagged labkit=created."""
    stubs = _stubbers(lab, "guardduty")
    stubs["guardduty"].add_response("list_detectors", {"DetectorIds": []})
    stubs["guardduty"].add_response(
        "create_detector",
        {"DetectorId": "new1"},
        {
            "Enable": True,
            "FindingPublishingFrequency": "FIFTEEN_MINUTES",
            "Tags": {"labkit": "created"},
        },
    )
    with stubs["guardduty"]:
        assert enable_guardduty(lab) == ("new1", True)
    stubs["guardduty"].assert_no_pending_responses()


def test_activate_threat_list_uploads_the_malicious_ip(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The threat list holds the malicious EIP and goes on the region's detector."""
    calls: list[dict[str, Any]] = []

    def upload(s3: Any, guardduty: Any, **kwargs: Any) -> str:
        calls.append(kwargs)
        return "set1"

    monkeypatch.setattr(threatlist, "upload_threat_list", upload)
    stubs = _stubbers(lab, "guardduty")
    stubs["guardduty"].add_response("list_detectors", {"DetectorIds": ["det1"]})
    outputs = {"MaliciousIp": "198.51.100.7", "ThreatListBucket": "tl-bucket"}
    with stubs["guardduty"]:
        assert activate_threat_list(lab, outputs) == "set1"
    assert calls == [
        {
            "detector_id": "det1",
            "bucket": "tl-bucket",
            "key": "threatlist/example-threat-list.txt",
            "addresses": ["198.51.100.7"],
            "name": "Example-Threat-List",
        }
    ]


def test_activate_threat_list_without_outputs_raises_not_deployed(lab: Lab) -> None:
    """Missing stack outputs point the student to deploying first."""
    with pytest.raises(NotDeployedError, match="MaliciousIp.*deploy_stack"):
        activate_threat_list(lab, {"ThreatListBucket": "b"})


def test_deploy_stack_creates_and_returns_outputs(lab: Lab) -> None:
    """A missing stack is created with IAM capability, code keys and tag."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation", "config")
    _stub_create(stubs, lab)
    with stubs["sts"], stubs["s3"], stubs["cloudformation"], stubs["config"]:
        outputs = stack.deploy_stack(
            lab, detector_id="det1", email="a@b.test", progress=False
        )
    assert outputs == {"InboxQueueUrl": "https://sqs/inbox"}
    for stubber in stubs.values():
        stubber.assert_no_pending_responses()


def test_deploy_stack_uses_the_accounts_config_recorder(lab: Lab) -> None:
    """An account that already records with AWS Config keeps its recorder."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation", "config")
    recorder = {"name": "default", "roleARN": "arn:aws:iam::111122223333:role/config"}
    _stub_create(stubs, lab, recorders=[recorder])
    with stubs["sts"], stubs["s3"], stubs["cloudformation"], stubs["config"]:
        stack.deploy_stack(lab, detector_id="det1", email="a@b.test", progress=False)
    for stubber in stubs.values():
        stubber.assert_no_pending_responses()


def test_deploy_stack_without_progress_prints_nothing(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=False shows no bar: nothing on stdout or stderr."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation", "config")
    _stub_create(stubs, lab)
    with stubs["sts"], stubs["s3"], stubs["cloudformation"], stubs["config"]:
        stack.deploy_stack(lab, detector_id="det1", email="a@b.test", progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_deploy_stack_with_progress_shows_bar(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=True draws a bar that ends at every template resource."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation", "config")
    _stub_create(stubs, lab)
    with stubs["sts"], stubs["s3"], stubs["cloudformation"], stubs["config"]:
        stack.deploy_stack(lab, detector_id="det1", email="a@b.test")
    err = capsys.readouterr().err
    assert "Security-Workshop" in err
    assert "3/3" in err


def test_deploy_stack_with_a_condition_labkit_cannot_decide(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A condition labkit cannot evaluate sizes the bar, never stops the deploy."""
    body = TEMPLATE.replace(
        "Parameters:",
        "Transform: AWS::LanguageExtensions\n"
        "Conditions:\n"
        "  Pair:\n"
        "    Fn::Equals: [{'Fn::Length': [a, b]}, 3]\n"
        "Parameters:",
    ).replace(
        "Outputs:",
        "  Extra:\n    Type: AWS::SNS::Topic\n    Condition: Pair\nOutputs:",
    )
    assert stack.TEMPLATE_PATH.read_text() == TEMPLATE
    stack.TEMPLATE_PATH.write_text(body)
    stubs = _stubbers(lab, "sts", "s3", "cloudformation", "config")
    _stub_create(stubs, lab, template=body)

    with stubs["sts"], stubs["s3"], stubs["cloudformation"], stubs["config"]:
        outputs = stack.deploy_stack(lab, detector_id="det1", email="a@b.test")

    assert outputs == {"InboxQueueUrl": "https://sqs/inbox"}
    err = capsys.readouterr().err
    assert "0/4" in err
    assert "3/3" in err
    for stubber in stubs.values():
        stubber.assert_no_pending_responses()


def test_deploy_stack_reuses_identical_stack(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A complete stack with the same template and parameters is not touched, and says so."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation")
    _stub_packaging(stubs, lab, exists=True)
    params = {"DetectorId": "det1", "ArtifactBucket": BUCKET, **_code_keys(lab)}
    deployed = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
    deployed.append({"ParameterKey": "EmailAddress", "ParameterValue": ""})
    cfn = stubs["cloudformation"]
    cfn.add_response(
        "describe_stacks",
        _stack("CREATE_COMPLETE", Parameters=deployed, Outputs=OUTPUTS),
        {"StackName": "Security-Workshop"},
    )
    cfn.add_response(
        "get_template",
        {"TemplateBody": TEMPLATE},
        {"StackName": STACK_ID, "TemplateStage": "Original"},
    )
    with stubs["sts"], stubs["s3"], cfn:
        outputs = stack.deploy_stack(lab, detector_id="det1")
    assert outputs == {"InboxQueueUrl": "https://sqs/inbox"}
    cfn.assert_no_pending_responses()
    assert capsys.readouterr().out.strip() == (
        "Security-Workshop: CREATE_COMPLETE, already deployed with this template "
        "and parameters; nothing changed"
    )


def test_deploy_stack_waits_for_stack_in_progress(lab: Lab) -> None:
    """A stack already being created is waited for, then reused."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation")
    cfn = stubs["cloudformation"]
    cfn.add_response("describe_stacks", _stack("CREATE_IN_PROGRESS"))
    started = [_event(0, "Security-Workshop", "CREATE_IN_PROGRESS")]
    cfn.add_response(
        "describe_stacks", _stack("CREATE_COMPLETE"), {"StackName": STACK_ID}
    )
    cfn.add_response("describe_stack_events", {"StackEvents": started})
    params = {"DetectorId": "det1", "ArtifactBucket": BUCKET, **_code_keys(lab)}
    deployed = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
    cfn.add_response(
        "describe_stacks",
        _stack("CREATE_COMPLETE", Parameters=deployed, Outputs=OUTPUTS),
    )
    cfn.add_response("get_template", {"TemplateBody": TEMPLATE})
    _stub_packaging(stubs, lab, exists=True)
    with stubs["sts"], stubs["s3"], cfn:
        outputs = stack.deploy_stack(lab, detector_id="det1", progress=False)
    assert outputs == {"InboxQueueUrl": "https://sqs/inbox"}
    cfn.assert_no_pending_responses()


def test_deploy_stack_in_failed_state_raises_stack_error(lab: Lab) -> None:
    """A rolled-back stack is refused, before any upload, with reason and next step."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation")
    cfn = stubs["cloudformation"]
    cfn.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))
    events = [
        _event(4, "Security-Workshop", "ROLLBACK_COMPLETE"),
        _event(3, "Queue", "CREATE_FAILED", "Resource creation cancelled"),
        _event(2, "Topic", "CREATE_FAILED", "Topic limit exceeded"),
        _event(1, "Topic", "CREATE_IN_PROGRESS"),
        _event(0, "Security-Workshop", "CREATE_IN_PROGRESS"),
    ]
    cfn.add_response("describe_stack_events", {"StackEvents": events})
    with stubs["sts"], stubs["s3"], cfn, pytest.raises(StackError) as caught:
        stack.deploy_stack(lab, detector_id="det1", progress=False)
    message = str(caught.value)
    assert "ROLLBACK_COMPLETE" in message
    assert "Topic limit exceeded" in message
    assert "labkit.delete_stack(lab)" in message
    assert isinstance(caught.value, RuntimeError)
    for stubber in stubs.values():
        stubber.assert_no_pending_responses()


def test_deploy_stack_failure_names_first_failed_resource(lab: Lab) -> None:
    """A create that rolls back raises StackError with the first failure."""
    stubs = _stubbers(lab, "sts", "s3", "cloudformation", "config")
    _stub_packaging(stubs, lab, exists=True)
    stubs["config"].add_response(
        "describe_configuration_recorders", {"ConfigurationRecorders": []}
    )
    cfn = stubs["cloudformation"]
    _missing(cfn, "describe_stacks")
    cfn.add_response("create_stack", {"StackId": STACK_ID})
    cfn.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))
    events = [
        _event(3, "Queue", "CREATE_FAILED", "Resource creation cancelled"),
        _event(2, "Topic", "CREATE_FAILED", "Invalid parameter: Name"),
        _event(0, "Security-Workshop", "CREATE_IN_PROGRESS"),
    ]
    cfn.add_response("describe_stack_events", {"StackEvents": events})
    with (
        stubs["sts"],
        stubs["s3"],
        stubs["config"],
        cfn,
        pytest.raises(StackError) as caught,
    ):
        stack.deploy_stack(lab, detector_id="det1", progress=False)
    assert "Topic" in str(caught.value) and "Invalid parameter: Name" in str(
        caught.value
    )


def test_deploy_stack_times_out(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stack still in progress at the timeout raises WaitTimeoutError."""
    ticks = iter([0.0, 0.0, 120.0])
    monkeypatch.setattr(stack_progress, "_clock", lambda: next(ticks))
    stubs = _stubbers(lab, "sts", "s3", "cloudformation", "config")
    _stub_packaging(stubs, lab, exists=True)
    stubs["config"].add_response(
        "describe_configuration_recorders", {"ConfigurationRecorders": []}
    )
    cfn = stubs["cloudformation"]
    _missing(cfn, "describe_stacks")
    cfn.add_response("create_stack", {"StackId": STACK_ID})
    started = [_event(0, "Security-Workshop", "CREATE_IN_PROGRESS")]
    for _ in range(2):
        cfn.add_response("describe_stacks", _stack("CREATE_IN_PROGRESS"))
        cfn.add_response("describe_stack_events", {"StackEvents": started})
    with (
        stubs["sts"],
        stubs["s3"],
        stubs["config"],
        cfn,
        pytest.raises(WaitTimeoutError),
    ):
        stack.deploy_stack(lab, detector_id="det1", progress=False, timeout_minutes=1)


def test_delete_stack_missing_is_a_no_op(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting a stack that does not exist does nothing and says so."""
    stubs = _stubbers(lab, "cloudformation")
    _missing(stubs["cloudformation"], "describe_stacks")
    with stubs["cloudformation"], caplog.at_level(logging.INFO, "labkit.stack"):
        stack.delete_stack(lab, progress=False)
    stubs["cloudformation"].assert_no_pending_responses()
    assert "nothing to delete" in caplog.text


def test_delete_stack_failed_names_buckets(lab: Lab) -> None:
    """DELETE_FAILED raises StackError with the reason and the bucket hint."""
    cfn = _stubbers(lab, "cloudformation")["cloudformation"]
    cfn.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
    summary = {
        "LogicalResourceId": "Bucket",
        "ResourceType": "AWS::S3::Bucket",
        "LastUpdatedTimestamp": WHEN,
        "ResourceStatus": "CREATE_COMPLETE",
    }
    cfn.add_response("list_stack_resources", {"StackResourceSummaries": [summary]})
    old = [_event(1, "Security-Workshop", "CREATE_COMPLETE")]
    cfn.add_response("describe_stack_events", {"StackEvents": old})
    cfn.add_response("delete_stack", {}, {"StackName": STACK_ID})
    cfn.add_response("describe_stacks", _stack("DELETE_FAILED"))
    events = [
        _event(
            3, "Bucket", "DELETE_FAILED", "The bucket you tried to delete is not empty"
        ),
        _event(2, "Security-Workshop", "DELETE_IN_PROGRESS"),
    ]
    cfn.add_response("describe_stack_events", {"StackEvents": events + old})
    with cfn, pytest.raises(StackError) as caught:
        stack.delete_stack(lab, progress=False)
    message = str(caught.value)
    assert "DELETE_FAILED" in message and "is not empty" in message
    assert "empty the lab's buckets" in message


def test_delete_stack_waits_until_gone(lab: Lab) -> None:
    """A stack that vanishes from DescribeStacks counts as deleted."""
    cfn = _stubbers(lab, "cloudformation")["cloudformation"]
    cfn.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
    cfn.add_response("list_stack_resources", {"StackResourceSummaries": []})
    cfn.add_response("describe_stack_events", {"StackEvents": []})
    cfn.add_response("delete_stack", {}, {"StackName": STACK_ID})
    _missing(cfn, "describe_stacks")
    with cfn:
        stack.delete_stack(lab, progress=False)
    cfn.assert_no_pending_responses()


def test_stack_outputs_missing_raises_not_deployed(lab: Lab) -> None:
    """Outputs of a stack that does not exist point to deploy_stack."""
    cfn = _stubbers(lab, "cloudformation")["cloudformation"]
    _missing(cfn, "describe_stacks")
    with cfn, pytest.raises(NotDeployedError, match="deploy_stack"):
        stack.stack_outputs(lab)


def test_stack_resources_frame_has_named_columns(lab: Lab) -> None:
    """ListStackResources becomes one row per resource with four columns."""
    cfn = _stubbers(lab, "cloudformation")["cloudformation"]
    summaries = [
        {
            "LogicalResourceId": "Queue",
            "PhysicalResourceId": "https://sqs/inbox",
            "ResourceType": "AWS::SQS::Queue",
            "LastUpdatedTimestamp": WHEN,
            "ResourceStatus": "CREATE_COMPLETE",
        },
        {
            "LogicalResourceId": "Topic",
            "ResourceType": "AWS::SNS::Topic",
            "LastUpdatedTimestamp": WHEN,
            "ResourceStatus": "CREATE_IN_PROGRESS",
        },
    ]
    cfn.add_response(
        "list_stack_resources",
        {"StackResourceSummaries": summaries},
        {"StackName": "Security-Workshop"},
    )
    with cfn:
        frame = stack.stack_resources(lab)
    assert list(frame.columns) == ["logical_id", "type", "physical_id", "status"]
    assert frame["logical_id"].tolist() == ["Queue", "Topic"]
    assert frame.loc[0, "physical_id"] == "https://sqs/inbox"
    assert frame.loc[1, "status"] == "CREATE_IN_PROGRESS"


# prepare_lab ------------------------------------------------------------------

MALICIOUS_IP = "198.51.100.7"
LIST_BUCKET = "guardduty-example-tl"
LAB_OUTPUTS = {
    "InboxQueueUrl": "https://sqs/inbox",
    "MaliciousIp": MALICIOUS_IP,
    "ThreatListBucket": LIST_BUCKET,
}
LIST_NAME = "Example-Threat-List"
LIST_KEY = "threatlist/example-threat-list.txt"
READS = ("List", "Get", "Describe", "Head")


def _record_operations(lab: Lab, services: list[str]) -> list[str]:
    """Record the name of every operation the lab's clients call."""
    called: list[str] = []
    for service in services:
        lab.client(service).meta.events.register(
            "before-parameter-build",
            lambda model, **_: called.append(model.name),
        )
    return called


def _stub_ready_stack(stubs: dict[str, Stubber], lab: Lab) -> None:
    """An enabled detector and a complete stack deployed with these parameters."""
    guardduty = stubs["guardduty"]
    guardduty.add_response("list_detectors", {"DetectorIds": ["det1"]})
    guardduty.add_response(
        "get_detector", {"ServiceRole": "r", "Status": "ENABLED", "Tags": {}}
    )
    _stub_packaging(stubs, lab, exists=True)
    params = {"DetectorId": "det1", "ArtifactBucket": BUCKET, **_code_keys(lab)}
    deployed = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
    outputs = [{"OutputKey": k, "OutputValue": v} for k, v in LAB_OUTPUTS.items()]
    cfn = stubs["cloudformation"]
    cfn.add_response(
        "describe_stacks",
        _stack("CREATE_COMPLETE", Parameters=deployed, Outputs=outputs),
    )
    cfn.add_response("get_template", {"TemplateBody": TEMPLATE})


def _stub_list_file(
    stubs: dict[str, Stubber], bucket: str, key: str, text: str
) -> None:
    data = text.encode()
    stubs["s3"].add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(data), len(data))},
        {"Bucket": bucket, "Key": key},
    )


def _stub_set(stubs: dict[str, Stubber], status: str, location: str) -> None:
    stubs["guardduty"].add_response(
        "get_threat_intel_set",
        {"Name": LIST_NAME, "Format": "TXT", "Location": location, "Status": status},
        {"DetectorId": "det1", "ThreatIntelSetId": "tl1"},
    )


def _prepare(lab: Lab, stubs: dict[str, Stubber]) -> dict[str, str]:
    with (
        stubs["guardduty"],
        stubs["sts"],
        stubs["s3"],
        stubs["cloudformation"],
    ):
        outputs = prepare_lab(lab)
    for stubber in stubs.values():
        stubber.assert_no_pending_responses()
    return outputs


def test_prepare_lab_on_a_ready_lab_only_reads(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ready lab is read, never written: the set found on page 2, its own file."""
    slept: list[float] = []
    monkeypatch.setattr("labkit.lab.time.sleep", slept.append)
    services = ["guardduty", "sts", "s3", "cloudformation"]
    stubs = _stubbers(lab, *services)
    called = _record_operations(lab, services)
    _stub_ready_stack(stubs, lab)
    guardduty = stubs["guardduty"]
    guardduty.add_response(
        "list_threat_intel_sets",
        {"ThreatIntelSetIds": ["other1"], "NextToken": "page2"},
        {"DetectorId": "det1"},
    )
    guardduty.add_response(
        "get_threat_intel_set",
        {"Name": "someone-else", "Format": "TXT", "Location": "x", "Status": "ACTIVE"},
        {"DetectorId": "det1", "ThreatIntelSetId": "other1"},
    )
    guardduty.add_response(
        "list_threat_intel_sets",
        {"ThreatIntelSetIds": ["tl1"]},
        {"DetectorId": "det1", "NextToken": "page2"},
    )
    # The set points at a file of its own (virtual-hosted, regional URL):
    # that file is what GuardDuty reads, so that is the one checked.
    location = f"https://{LIST_BUCKET}.s3.{REGION}.amazonaws.com/lists/moved.txt"
    _stub_set(stubs, "ACTIVE", location)
    _stub_list_file(stubs, LIST_BUCKET, "lists/moved.txt", f"# lab\n{MALICIOUS_IP}\n")

    outputs = _prepare(lab, stubs)

    assert outputs == {**LAB_OUTPUTS, "DetectorId": "det1"}
    assert [op for op in called if not op.startswith(READS)] == []
    assert called[-2:] == ["GetThreatIntelSet", "GetObject"]
    assert slept == []
    assert "waiting" not in capsys.readouterr().out


def test_prepare_lab_uploads_a_missing_list_then_waits_for_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing list is uploaded and activated, then waited for a minute at a time."""
    slept: list[float] = []
    monkeypatch.setattr("labkit.lab.time.sleep", slept.append)
    stubs = _stubbers(lab, "guardduty", "sts", "s3", "cloudformation")
    _stub_ready_stack(stubs, lab)
    guardduty = stubs["guardduty"]
    for _ in range(2):  # prepare_lab's look, then upload_threat_list's
        guardduty.add_response(
            "list_threat_intel_sets", {"ThreatIntelSetIds": []}, {"DetectorId": "det1"}
        )
    stubs["s3"].add_response(
        "put_object",
        {"ETag": '"x"'},
        {
            "Bucket": LIST_BUCKET,
            "Key": LIST_KEY,
            "Body": f"{MALICIOUS_IP}\n".encode(),
            "ContentType": "text/plain",
        },
    )
    location = f"https://s3.amazonaws.com/{LIST_BUCKET}/{LIST_KEY}"
    guardduty.add_response(
        "create_threat_intel_set",
        {"ThreatIntelSetId": "tl1"},
        {
            "DetectorId": "det1",
            "Name": LIST_NAME,
            "Format": "TXT",
            "Location": location,
            "Activate": True,
        },
    )
    for status in ("ACTIVATING", "ACTIVE"):
        guardduty.add_response(
            "list_threat_intel_sets",
            {"ThreatIntelSetIds": ["tl1"]},
            {"DetectorId": "det1"},
        )
        _stub_set(stubs, status, location)
        _stub_list_file(stubs, LIST_BUCKET, LIST_KEY, f"{MALICIOUS_IP}\n")

    outputs = _prepare(lab, stubs)

    assert outputs["DetectorId"] == "det1"
    assert slept == [60, 60]
    lines = capsys.readouterr().out.splitlines()
    waits = [line for line in lines if "waiting a minute" in line]
    assert waits == [
        f"Threat list {LIST_NAME!r} is ACTIVATING: waiting a minute for "
        f"GuardDuty to read it ({minute} of at most 15)"
        for minute in (1, 2)
    ]


def test_prepare_lab_names_a_list_file_it_may_not_read(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AccessDenied on the set's file is a LabError naming it and the next step."""
    monkeypatch.setattr("labkit.lab.time.sleep", lambda seconds: None)
    services = ["guardduty", "sts", "s3", "cloudformation"]
    stubs = _stubbers(lab, *services)
    called = _record_operations(lab, services)
    _stub_ready_stack(stubs, lab)
    stubs["guardduty"].add_response(
        "list_threat_intel_sets", {"ThreatIntelSetIds": ["tl1"]}
    )
    _stub_set(stubs, "ACTIVE", f"https://s3.{REGION}.amazonaws.com/other/list.txt")
    stubs["s3"].add_client_error(
        "get_object",
        service_error_code="AccessDenied",
        service_message="Access Denied",
        http_status_code=403,
        expected_params={"Bucket": "other", "Key": "list.txt"},
    )

    with pytest.raises(LabError) as caught:
        _prepare(lab, stubs)

    message = str(caught.value)
    assert not isinstance(caught.value, ClientError)
    assert "s3://other/list.txt" in message
    assert "AccessDenied (Access Denied)" in message
    assert message.endswith("then run prepare_lab(lab) again")
    assert [op for op in called if not op.startswith(READS)] == []

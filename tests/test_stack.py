"""Tests of labkit.stack: packaging the Lambda code and reading the template."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from labkit import artifacts, remediation, stack
from labkit.errors import ConfigError
from labkit.lab import Lab
from labkit.local import settings
from labkit.template import load_template, pseudo_parameters


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A plain moto server on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{server._server.server_port}"
    server.stop()


@pytest.fixture
def lab(moto_url: str) -> Lab:
    """A local-mode lab aimed at an emptied moto server."""
    reset = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    return Lab("local", endpoint_url=moto_url)


def test_template_path_points_into_the_repository() -> None:
    """TEMPLATE_PATH is cfn/security-workshop.yaml beside the labkit package."""
    package = Path(stack.__file__).resolve().parent
    assert stack.TEMPLATE_PATH == package.parent / "cfn" / "security-workshop.yaml"


def test_zip_source_is_byte_identical_across_runs(tmp_path: Path) -> None:
    """The same code zips to the same bytes, whatever the file's mtime."""
    source = tmp_path / "isolate_instance.py"
    source.write_text("def handler(event, context):\n    return None\n")
    first = remediation.zip_source(source)
    os.utime(source, (1_900_000_000, 1_900_000_000))
    second = remediation.zip_source(source)
    assert first == second

    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["isolate_instance.py"]
        assert archive.read("isolate_instance.py") == source.read_bytes()


def test_zip_source_changes_with_the_code(tmp_path: Path) -> None:
    """Different code gives a different archive (and so a new key)."""
    source = tmp_path / "revoke_sessions.py"
    source.write_text("A = 1\n")
    before = remediation.zip_source(source)
    source.write_text("A = 2\n")
    assert remediation.zip_source(source) != before


def test_package_remediation_uploads_keyed_by_sha256(lab: Lab) -> None:
    """The bucket is made in the lab's region and keys carry each zip's hash."""
    keys = stack.package_remediation(lab)

    bucket = f"labkit-artifacts-{settings.LOCAL_ACCOUNT_ID}-eu-west-2"
    assert keys["ArtifactBucket"] == bucket
    s3 = lab.client("s3")
    location = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert location == "eu-west-2"
    for parameter, module in remediation.CODE_KEY_PARAMETERS.items():
        body = s3.get_object(Bucket=bucket, Key=keys[parameter])["Body"].read()
        assert body == remediation.build_zip(module)
        assert hashlib.sha256(body).hexdigest() in keys[parameter]


def test_package_remediation_twice_uploads_nothing_new(lab: Lab) -> None:
    """Packaging unchanged code again gives the same keys and no new objects."""
    first = stack.package_remediation(lab)
    second = stack.package_remediation(lab)
    assert first == second
    listed = lab.client("s3").list_objects_v2(Bucket=first["ArtifactBucket"])
    assert listed["KeyCount"] == 2


def test_read_template_counts_resources_with_short_tags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Resources are counted in a template that uses !Ref, !Sub and !GetAtt."""
    template = tmp_path / "t.yaml"
    template.write_text(
        "Resources:\n"
        "  A: {Type: AWS::SNS::Topic}\n"
        "  B:\n    Type: AWS::SQS::Queue\n    Properties:\n"
        "      QueueName: !Sub '${AWS::StackName}-q'\n"
        "  C:\n    Type: AWS::SNS::Subscription\n    Properties:\n"
        "      TopicArn: !Ref A\n      Endpoint: !GetAtt [B, Arn]\n"
    )
    monkeypatch.setattr(stack, "TEMPLATE_PATH", template)
    body, total = artifacts.read_template(stack.TEMPLATE_PATH)
    assert body == template.read_text()
    assert total == 3


def test_planned_resources_counts_only_true_conditions() -> None:
    """A resource behind a false Condition is not counted; short tags work."""
    body = (
        "Parameters:\n"
        "  Email: {Type: String, Default: ''}\n"
        "  Existing: {Type: String, Default: 'false'}\n"
        "Conditions:\n"
        "  HasEmail: !Not [!Equals [!Ref Email, '']]\n"
        "  Creates: !Equals [!Ref Existing, 'false']\n"
        "  Both: !And [!Condition HasEmail, {Condition: Creates}]\n"
        "  Either: !Or [!Condition HasEmail, !Condition Creates]\n"
        "Resources:\n"
        "  A: {Type: AWS::SNS::Topic}\n"
        "  B: {Type: AWS::SNS::Subscription, Condition: HasEmail}\n"
        "  C: {Type: AWS::Config::ConfigurationRecorder, Condition: Creates}\n"
        "  D: {Type: AWS::SNS::Topic, Condition: Both}\n"
        "  E: {Type: AWS::SNS::Topic, Condition: Either}\n"
    )
    assert artifacts.planned_resources(body, {}) == 3
    assert artifacts.planned_resources(body, {"Email": "a@example.com"}) == 5
    only_email = {"Email": "a@example.com", "Existing": "true"}
    assert artifacts.planned_resources(body, only_email) == 3
    assert artifacts.planned_resources(body, {"Existing": "true"}) == 1


def test_planned_resources_of_the_lab_template() -> None:
    """Without an e-mail address the two e-mail subscriptions are not made."""
    body, total = artifacts.read_template(stack.TEMPLATE_PATH)
    assert artifacts.planned_resources(body, {}) == total - 2
    with_email = {"EmailAddress": "student@example.com"}
    assert artifacts.planned_resources(body, with_email) == total
    existing = {"UseExistingConfigRecorder": "true"}
    assert artifacts.planned_resources(body, existing) == total - 4


def test_planned_resources_resolves_pseudo_parameters() -> None:
    """Ref of AWS::Region and AWS::Partition gives the stack's, not the name."""
    body = (
        "Conditions:\n"
        "  London: !Equals [!Ref AWS::Region, eu-west-2]\n"
        "  China: !Equals [!Ref AWS::Partition, aws-cn]\n"
        "  Named: !Equals [!Ref AWS::Region, AWS::Region]\n"
        "Resources:\n"
        "  A: {Type: AWS::SNS::Topic, Condition: London}\n"
        "  B: {Type: AWS::SNS::Topic, Condition: China}\n"
        "  C: {Type: AWS::SNS::Topic, Condition: Named}\n"
    )
    london = pseudo_parameters("111122223333", "eu-west-2", "lab")
    beijing = pseudo_parameters("111122223333", "cn-north-1", "lab")

    assert artifacts.planned_resources(body, {}, london) == 1
    assert artifacts.planned_resources(body, {}, beijing) == 1


def test_planned_resources_evaluates_find_in_map() -> None:
    """Fn::FindInMap, allowed in conditions, decides them like CloudFormation."""
    body = (
        "Parameters:\n  Env: {Type: String, Default: dev}\n"
        "Mappings:\n  Plans: {prod: {Alarms: 'true'}, dev: {Alarms: 'false'}}\n"
        "Conditions:\n"
        "  Alarms: !Equals [!FindInMap [Plans, !Ref Env, Alarms], 'true']\n"
        "Resources:\n"
        "  A: {Type: AWS::SNS::Topic}\n"
        "  B: {Type: AWS::CloudWatch::Alarm, Condition: Alarms}\n"
    )

    assert artifacts.planned_resources(body, {}) == 1
    assert artifacts.planned_resources(body, {"Env": "prod"}) == 2


def test_planned_resources_counts_what_it_cannot_decide(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An undecidable condition counts its resource and is logged at DEBUG."""
    body = (
        "Transform: AWS::LanguageExtensions\n"
        "Parameters:\n"
        "  Ami: {Type: 'AWS::SSM::Parameter::Value<String>', Default: /a/b}\n"
        "  Names: {Type: CommaDelimitedList, Default: 'a,b'}\n"
        "Conditions:\n"
        "  Pair:\n    Fn::Equals: [{'Fn::Length': {Ref: Names}}, 2]\n"
        "  Stack: !Equals [!Ref AWS::StackId, '']\n"
        "  Image: !Equals [!Ref Ami, ami-1]\n"
        "  Zones: !Equals [!Select [0, !GetAZs ''], eu-west-2a]\n"
        "  Never: !Equals [a, b]\n"
        "Resources:\n"
        "  A: {Type: AWS::SNS::Topic, Condition: Pair}\n"
        "  B: {Type: AWS::SNS::Topic, Condition: Stack}\n"
        "  C: {Type: AWS::SNS::Topic, Condition: Image}\n"
        "  D: {Type: AWS::SNS::Topic, Condition: Zones}\n"
        "  E: {Type: AWS::SNS::Topic, Condition: Never}\n"
    )
    pseudo = pseudo_parameters("111122223333", "eu-west-2", "lab")

    with caplog.at_level(logging.DEBUG, logger="labkit.artifacts"):
        assert artifacts.planned_resources(body, {}, pseudo) == 4

    undecided = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.DEBUG and "counting the resource" in record.message
    ]
    assert [message.split()[1:4] for message in undecided] == [
        ["Pair", "of", "A"],
        ["Stack", "of", "B"],
        ["Image", "of", "C"],
        ["Zones", "of", "D"],
    ]
    assert "Fn::Length" in undecided[0]
    assert "AWS::StackId" in undecided[1]


def test_read_template_refuses_a_file_that_is_no_template(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A file without Resources is named, with how to get the template back."""
    template = tmp_path / "t.yaml"
    template.write_text("Parameters: {}\n")
    monkeypatch.setattr(stack, "TEMPLATE_PATH", template)

    with pytest.raises(ConfigError, match="t.yaml.*At least one Resources.*git"):
        artifacts.read_template(stack.TEMPLATE_PATH)


def test_read_template_missing_raises_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A missing template is named, with how to install labkit properly."""
    monkeypatch.setattr(stack, "TEMPLATE_PATH", tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="absent.yaml.*pip install -e"):
        artifacts.read_template(stack.TEMPLATE_PATH)


def test_repository_template_takes_the_parameters_deploy_passes() -> None:
    """The real template fits TemplateBody and declares every deploy parameter."""
    body, total = artifacts.read_template(stack.TEMPLATE_PATH)
    assert len(body.encode("utf-8")) <= artifacts.MAX_TEMPLATE_BODY
    assert total > 0
    parsed = load_template(body)
    expected = {
        "DetectorId",
        "ArtifactBucket",
        "EmailAddress",
        *remediation.CODE_KEY_PARAMETERS,
    }
    assert expected <= set(parsed["Parameters"])
    assert {"MaliciousIp", "ThreatListBucket", "InboxQueueUrl"} <= set(
        parsed["Outputs"]
    )

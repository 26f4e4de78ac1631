"""Tests of how the gateway reads requests and checks what it serves."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from labkit.local import protocol, shapes
from labkit.local.registry import ServiceError


def _request(
    method: str, path: str, headers: dict[str, str], body: bytes = b"", query: str = ""
) -> protocol.Request:
    return protocol.Request(method, path, query, Headers(headers), body)


def _signed(service: str, region: str = "eu-west-2") -> dict[str, str]:
    scope = f"AKIAEXAMPLEKEY000001/20261203/{region}/{service}/aws4_request"
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host"}


def test_read_signature_from_header() -> None:
    """The key id, region and signing name come from the credential scope."""
    signature = protocol.read_signature(_request("GET", "/", _signed("guardduty")))
    assert signature == protocol.Signature(
        "AKIAEXAMPLEKEY000001", "eu-west-2", "guardduty"
    )


def test_read_signature_from_presigned_query() -> None:
    """A presigned URL carries the same scope in X-Amz-Credential."""
    query = "X-Amz-Credential=AKIAQ%2F20261203%2Fus-east-1%2Fs3%2Faws4_request"
    signature = protocol.read_signature(_request("GET", "/b/k", {}, query=query))
    assert (signature.access_key_id, signature.region) == ("AKIAQ", "us-east-1")


def test_read_signature_unsigned() -> None:
    """An unsigned request has no identity."""
    assert protocol.read_signature(_request("GET", "/", {})) == protocol.Signature(
        None, None, None
    )


def test_service_for_maps_signing_names() -> None:
    """CloudWatch signs as 'monitoring' but is the botocore 'cloudwatch' model."""
    signature = protocol.Signature("k", "eu-west-2", "monitoring")
    assert protocol.service_for(signature) == "cloudwatch"


@pytest.mark.parametrize(
    ("service", "method", "path", "headers", "body", "expected"),
    [
        ("guardduty", "GET", "/detector", {}, b"", "ListDetectors"),
        ("guardduty", "POST", "/detector/abc/findings", {}, b"{}", "ListFindings"),
        ("guardduty", "POST", "/detector/abc/findings/get", {}, b"{}", "GetFindings"),
        (
            "guardduty",
            "POST",
            "/detector/abc/findings/archive",
            {},
            b"{}",
            "ArchiveFindings",
        ),
        (
            "events",
            "POST",
            "/",
            {"X-Amz-Target": "AWSEvents.PutEvents"},
            b"{}",
            "PutEvents",
        ),
        (
            "cloudformation",
            "POST",
            "/",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Action=CreateStack&Version=2010-05-15",
            "CreateStack",
        ),
        ("lambda", "POST", "/2015-03-31/functions/f/invocations", {}, b"{}", "Invoke"),
    ],
)
def test_find_operation_per_protocol(
    service: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    expected: str,
) -> None:
    """Operations are found for the json, query and rest-json protocols."""
    found = protocol.find_operation(service, _request(method, path, headers, body))
    assert found is not None and found.name == expected


def test_parse_params_rest_json_with_url_parameter() -> None:
    """The detector id comes from the path and the criteria from the body."""
    request = _request(
        "POST", "/detector/d123/findings/get", {}, b'{"findingIds": ["f1", "f2"]}'
    )
    operation = protocol.find_operation("guardduty", request)
    assert operation is not None
    params = protocol.parse_params(operation, request)
    assert params == {"DetectorId": "d123", "FindingIds": ["f1", "f2"]}


def test_serialize_error_keeps_code_and_status() -> None:
    """A ServiceError becomes an AWS error response botocore can read."""
    operation = protocol.service_model("guardduty").operation_model("GetDetector")
    status, headers, body = protocol.serialize(
        operation, ServiceError("BadRequestException", "no such detector", 400)
    )
    assert status == 400
    assert b"no such detector" in body
    assert "BadRequestException" in headers.get("X-Amzn-Errortype", "") + body.decode()


def test_check_output_accepts_a_fitting_result() -> None:
    """A result with only modelled members of the right types passes."""
    operation = protocol.service_model("guardduty").operation_model("ListDetectors")
    shapes.check_output(operation, {"DetectorIds": ["a" * 32]})


@pytest.mark.parametrize(
    ("result", "complaint"),
    [
        ({"DetectorIds": ["x"], "Extra": 1}, "unknown members ['Extra']"),
        ({}, "required member 'DetectorIds'"),
        ({"DetectorIds": "x"}, "expected a list"),
        ({"DetectorIds": [1]}, "expected string"),
    ],
)
def test_check_output_refuses_misfits(
    result: dict[str, object], complaint: str
) -> None:
    """Unknown, missing and mistyped members are each refused by name."""
    operation = protocol.service_model("guardduty").operation_model("ListDetectors")
    with pytest.raises(shapes.ShapeMismatch, match=complaint.replace("[", r"\[")):
        shapes.check_output(operation, result)

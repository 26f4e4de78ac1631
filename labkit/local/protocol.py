"""Reading AWS requests and writing AWS responses with botocore's models.

The gateway needs to know, for any request a boto3 client or the ``aws`` CLI
sends, which service and operation it is, who signed it, and what its
parameters are; and to answer with bytes that botocore parses. The service
models shipped with botocore say all of that, and moto's parser and
serializer read them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from botocore.model import OperationModel, ServiceModel
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model
from werkzeug.datastructures import Headers, MultiDict

from labkit.local.registry import ServiceError

# The services the lab uses, by botocore name.
LAB_SERVICES = (
    "cloudformation cloudtrail cloudwatch config dynamodb ec2 events guardduty "
    "iam lambda logs s3 sns sqs ssm sts"
).split()

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Signature:
    """What a SigV4 signature says about its caller."""

    access_key_id: str | None
    region: str | None
    signing_name: str | None


@dataclass
class Request:
    """The parts of an HTTP request the gateway reads."""

    method: str
    path: str
    query_string: str
    headers: Headers
    body: bytes


def read_signature(request: Request) -> Signature:
    """Return the key id, region and service of the request's signature."""
    header = request.headers.get("Authorization", "")
    found = _CREDENTIAL.search(header)
    if found is None:
        query = parse_qs(request.query_string)
        credential = query.get("X-Amz-Credential", [""])[0]
        found = _CREDENTIAL.search("Credential=" + unquote(credential))
    if found is None:
        return Signature(None, None, None)
    return Signature(found.group(1), found.group(3), found.group(4))


@functools.cache
def service_model(service: str) -> ServiceModel:
    """Return botocore's model of ``service`` (a botocore service name).

    moto's subclass of the model is used because its serializer needs it.
    """
    return get_service_model(service)


@functools.cache
def _services_by_signing_name() -> dict[str, str]:
    names: dict[str, str] = {}
    for service in LAB_SERVICES:
        model = service_model(service)
        names[model.signing_name] = service
        names.setdefault(model.endpoint_prefix, service)
    return names


def service_for(signature: Signature) -> str | None:
    """Return the botocore service name a signature's scope names."""
    if signature.signing_name is None:
        return None
    return _services_by_signing_name().get(signature.signing_name)


def find_operation(service: str, request: Request) -> OperationModel | None:
    """Return the operation a request calls, or None if it is not modelled."""
    model = service_model(service)
    target = request.headers.get("X-Amz-Target")
    if target:
        name = target.rsplit(".", 1)[-1]
        return _operation_or_none(model, name)
    if model.protocol in ("query", "ec2") or request.headers.get(
        "Content-Type", ""
    ).startswith("application/x-www-form-urlencoded"):
        form = _form(request)
        action = form.get("Action")
        if action:
            return _operation_or_none(model, action)
    return _match_rest_route(service, request)


def _operation_or_none(model: ServiceModel, name: str) -> OperationModel | None:
    if name in model.operation_names:
        return model.operation_model(name)
    return None


def _form(request: Request) -> dict[str, str]:
    text = request.query_string
    if request.body and request.method == "POST":
        text = request.body.decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


@functools.cache
def _rest_routes(service: str) -> list[tuple[re.Pattern[str], str, str]]:
    model = service_model(service)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/").split("?", 1)[0]
        literal = len(re.sub(r"\{[^}]+\}", "", uri))
        pattern = re.sub(r"\{[^}+]+\+\}", "(.+)", uri)
        pattern = re.sub(r"\{[^}]+\}", "([^/]+)", pattern)
        routes.append((literal, re.compile(f"^{pattern}/?$"), http["method"], name))
    routes.sort(key=lambda route: -route[0])
    return [(regex, method, name) for _, regex, method, name in routes]


def _match_rest_route(service: str, request: Request) -> OperationModel | None:
    for regex, method, name in _rest_routes(service):
        if method == request.method and regex.match(request.path):
            return service_model(service).operation_model(name)
    return None


def parse_params(operation: OperationModel, request: Request) -> dict[str, Any]:
    """Parse a request's parameters against the operation's input shape."""
    protocol = operation.service_model.protocol
    if request.headers.get("X-Amz-Target") and protocol not in ("json", "rest-json"):
        protocol = "json"
    parser = PROTOCOL_PARSERS[protocol](operation)
    text = request.query_string
    if protocol in ("query", "ec2") and request.body:
        text = request.body.decode("utf-8")
    values: MultiDict[str, str] = MultiDict(
        [(k, v) for k, vs in parse_qs(text, keep_blank_values=True).items() for v in vs]
    )
    url_params = _url_params(operation, request.path)
    request_dict = {
        "body": request.body,
        "headers": request.headers,
        "method": request.method,
        "url_params": url_params,
        "url_path": request.path,
        "values": values,
    }
    return dict(parser.parse(request_dict))  # type: ignore[arg-type]


def _url_params(operation: OperationModel, path: str) -> dict[str, str]:
    uri = operation.http.get("requestUri", "/").split("?", 1)[0]
    names = re.findall(r"\{([^}+]+)\+?\}", uri)
    pattern = re.sub(r"\{[^}+]+\+\}", "(.+)", uri)
    pattern = re.sub(r"\{[^}]+\}", "([^/]+)", pattern)
    found = re.match(f"^{pattern}/?$", path)
    if not found:
        return {}
    pairs = zip(names, found.groups(), strict=True)
    return {name: unquote(value) for name, value in pairs}


def serialize(
    operation: OperationModel, result: dict[str, Any] | ServiceError
) -> tuple[int, dict[str, str], bytes]:
    """Serialize a handler's result or error as the service's protocol does."""
    model = operation.service_model
    serializer_class = get_serializer_class(model.service_name, model.protocol)
    response = serializer_class(operation).serialize(result)
    body = response["body"]
    if isinstance(body, str):
        body = body.encode("utf-8")
    status = response["status_code"]
    if isinstance(result, ServiceError):
        status = result.status_code
    else:
        status = _modelled_status(operation, result) or status
    headers = {str(k): str(v) for k, v in response["headers"].items()}
    return status, headers, body


def _modelled_status(operation: OperationModel, result: dict[str, Any]) -> int | None:
    # Some outputs carry their HTTP status as a member (Lambda's Invoke says
    # 202 for Event and 204 for DryRun); moto's serializer leaves it out.
    shape = operation.output_shape
    if shape is None:
        return None
    for name, member in shape.members.items():  # type: ignore[attr-defined]
        if member.serialization.get("location") == "statusCode" and name in result:
            return int(result[name])
    return None

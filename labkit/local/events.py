"""EventBridge in the local cloud: matching rules and delivering to targets.

moto stores rules and targets, but cannot deliver to SNS or Lambda, crashes on
JSON input templates and has no TestEventPattern (moto-gaps.md §6). Here the
local cloud matches every event on a bus with its own pattern engine, renders
each target's input, and delivers it through the services' own APIs: SNS
Publish, SQS SendMessage, and Lambda invocations run by the Lambda runtime.

Each target is delivered on its own, as in EventBridge: a target that cannot
take the event (its topic, queue or function is gone, or a function is given
text that is not JSON) is logged as a warning and the others still get it.
EventBridge would retry such a delivery for up to 24 hours and then drop it or
send it to the target's dead-letter queue; the local cloud tries once, keeps
no dead-letter queues and emits no ``AWS/Events`` metrics (FailedInvocations).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from moto.backends import get_backend

from labkit.local import clock, internal, lambdas, protocol
from labkit.local.gateway import BEFORE_HOOKS, Exchange
from labkit.local.patterns import PatternError, matches, parse_pattern
from labkit.local.registry import Call, ServiceError, operation
from labkit.local.transformer import TransformerError, render_target_input

logger = logging.getLogger(__name__)

LAMBDA_SETTLE_TIMEOUT_S = 60.0

# What delivering to one target can raise: the service refused the call
# (ClientError, or ServiceError from the local Lambda), botocore failed to
# make it, or the target's input cannot be rendered.
_DELIVERY_ERRORS = (ClientError, BotoCoreError, ServiceError, TransformerError)


def emit(
    account_id: str,
    region: str,
    *,
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    resources: list[str],
    time: datetime | None = None,
    bus: str = "default",
) -> str:
    """Put one event on a bus, as an AWS service would, and deliver it.

    Returns:
        The new event's id.
    """
    when = (time or datetime.now(UTC)).astimezone(UTC)
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account_id,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": list(resources),
        "detail": detail,
    }
    dispatch(event, bus=bus)
    return str(event["id"])


def dispatch(event: dict[str, Any], *, bus: str = "default") -> int:
    """Deliver ``event`` to the targets of every enabled rule it matches.

    Each target is delivered independently: one that fails is logged at
    WARNING with the rule, the target's id and ARN and the reason, and the
    others are still delivered. The event is not retried.

    Returns:
        How many rules matched.
    """
    backend = get_backend("events")[event["account"]][event["region"]]
    event_bus = backend.event_buses.get(bus)
    if event_bus is None:
        return 0
    matched = 0
    for rule in list(event_bus.rules.values()):
        pattern = rule.event_pattern.get_pattern()
        if rule.state != "ENABLED" or not pattern:
            continue
        if not matches(pattern, event):
            continue
        matched += 1
        logger.info("event %s matched rule %s", event["id"], rule.name)
        for target in rule.targets:
            try:
                _deliver(event, rule, target)
            except _DELIVERY_ERRORS as error:
                logger.warning(
                    "rule %s target %s (%s): event %s not delivered: %s",
                    rule.name,
                    target.get("Id"),
                    target.get("Arn"),
                    event["id"],
                    _reason(error),
                )
    return matched


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code')}: {details.get('Message')}"
    if isinstance(error, ServiceError):
        return f"{error.code}: {error.message}"
    return f"{type(error).__name__}: {error}"


def _deliver(event: dict[str, Any], rule: Any, target: dict[str, Any]) -> None:
    text = render_target_input(target, event, rule_name=rule.name, rule_arn=rule.arn)
    arn = str(target["Arn"])
    service = arn.split(":")[2]
    region = event["region"]
    if service == "sns":
        internal.client("sns", region).publish(TopicArn=arn, Message=text)
    elif service == "sqs":
        name = arn.rsplit(":", 1)[-1]
        sqs = internal.client("sqs", region)
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=text)
    elif service == "lambda":
        spec = lambdas.function_spec(event["account"], region, arn)
        lambdas.invoke_async(spec, _lambda_payload(text, arn), datetime.now(UTC))
    else:
        logger.warning(
            "rule %s target %s: %s targets are not delivered by the local cloud",
            rule.name,
            target.get("Id"),
            service,
        )
        return
    logger.info("delivered event %s to %s", event["id"], arn)


def _lambda_payload(text: str, arn: str) -> Any:
    # Lambda takes only JSON; a plain-text template's output is refused.
    try:
        return json.loads(text)
    except ValueError:
        message = (
            f"Could not parse request body into json: the input rendered for "
            f"{arn} is not JSON; give the target a JSON Input or InputTemplate"
        )
        raise ServiceError("InvalidRequestContentException", message) from None


@operation("events", "PutEvents")
def put_events(call: Call) -> dict[str, Any]:
    """Accept custom events, refusing the ``aws.`` sources as AWS does."""
    entries = []
    failed = 0
    for entry in call.params.get("Entries", []):
        source = entry.get("Source", "")
        if source.startswith("aws."):
            failed += 1
            entries.append(
                {
                    "ErrorCode": "NotAuthorizedForSourceException",
                    "ErrorMessage": "Not authorized for the source.",
                }
            )
            continue
        try:
            detail = json.loads(entry.get("Detail") or "{}")
        except ValueError:
            failed += 1
            entries.append(
                {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
            )
            continue
        event_id = emit(
            call.account_id,
            call.region,
            source=source,
            detail_type=entry.get("DetailType", ""),
            detail=detail,
            resources=entry.get("Resources", []),
            time=entry.get("Time"),
            bus=str(entry.get("EventBusName") or "default").rsplit("/", 1)[-1],
        )
        entries.append({"EventId": event_id})
    return {"FailedEntryCount": failed, "Entries": entries}


@operation("events", "TestEventPattern")
def test_event_pattern(call: Call) -> dict[str, Any]:
    """Say whether an event matches a pattern, with AWS's validation.

    An event that is not a JSON object, or lacks one of ``id``, ``account``,
    ``source``, ``time``, ``region`` and ``detail-type``, is refused with
    ``ValidationException`` "Parameter Event is not valid."; the local cloud
    adds a ``Reason:`` naming what is wrong, which AWS leaves out. The API
    reference also lists ``resources`` as mandatory, but AWS matches events
    without it (LocalStack's AWS-validated snapshot
    ``test_events_patterns.py::TestEventPattern::test_event_pattern_source``,
    recorded 2024-07-11), so it is not required here either.
    """
    try:
        pattern = parse_pattern(call.params["EventPattern"])
    except PatternError as error:
        raise ServiceError("InvalidEventPatternException", str(error)) from None
    try:
        event = json.loads(call.params["Event"])
    except ValueError:
        raise ServiceError("ValidationException", _INVALID_EVENT) from None
    if not isinstance(event, dict):
        kind = _JSON_TYPES.get(type(event), type(event).__name__)
        reason = f"the event must be a JSON object, got a JSON {kind}"
        raise ServiceError("ValidationException", f"{_INVALID_EVENT} Reason: {reason}")
    missing = [key for key in _REQUIRED_EVENT_KEYS if key not in event]
    if missing:
        reason = (
            f"missing {', '.join(missing)}; an event needs "
            f"{', '.join(_REQUIRED_EVENT_KEYS)}"
        )
        raise ServiceError("ValidationException", f"{_INVALID_EVENT} Reason: {reason}")
    return {"Result": matches(pattern, event)}


_REQUIRED_EVENT_KEYS = ("id", "account", "source", "time", "region", "detail-type")
_INVALID_EVENT = "Parameter Event is not valid."
_JSON_TYPES: dict[type, str] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _validate_put_rule(exchange: Exchange) -> ServiceError | None:
    call = exchange.call
    if call is None or (call.service, call.operation) != ("events", "PutRule"):
        return None
    model = protocol.service_model("events").operation_model("PutRule")
    params = protocol.parse_params(model, exchange.request)
    if "EventPattern" not in params:
        return None
    try:
        parse_pattern(params["EventPattern"])
    except PatternError as error:
        return ServiceError("InvalidEventPatternException", str(error))
    return None


BEFORE_HOOKS.append(_validate_put_rule)


@clock.on_tick("lambda-settle", order=90)
def _settle(now: datetime, step: Any) -> None:
    # A simulated minute is over only when the functions it triggered are done.
    lambdas.runtime().wait_idle(LAMBDA_SETTLE_TIMEOUT_S)

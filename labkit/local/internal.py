"""Clients that code inside the local cloud uses to call its own services.

The CloudFormation engine, the Lambda runtime and the instance workloads call
the services through the gateway over loopback, as AWS services call each
other, so every call is seen, recorded and authorised in one place.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from labkit.errors import LocalCloudError
from labkit.local import settings

logger = logging.getLogger(__name__)

_state: dict[str, str] = {}
_lock = threading.Lock()
_clients: dict[tuple[Any, ...], BaseClient] = {}

_CONFIG = Config(
    retries={"max_attempts": 1, "mode": "standard"},
    connect_timeout=5,
    read_timeout=120,
    max_pool_connections=20,
)


def configure(endpoint_url: str) -> None:
    """Aim every internal client at ``endpoint_url`` (the gateway)."""
    with _lock:
        _state["endpoint_url"] = endpoint_url.rstrip("/")
        _clients.clear()


def endpoint_url() -> str:
    """Return the gateway's URL, or raise if the process has not set it."""
    try:
        return _state["endpoint_url"]
    except KeyError:
        message = (
            "the local cloud's endpoint is not configured in this process; "
            "call labkit.local.internal.configure(url) first"
        )
        raise LocalCloudError(message) from None


def client(
    service: str,
    region: str,
    *,
    credentials: dict[str, str] | None = None,
    source_ip: str | None = None,
) -> BaseClient:
    """Return a boto3 client for ``service`` aimed at the local cloud.

    Args:
        service: boto3 service name, such as ``"ec2"``.
        region: region to sign for.
        credentials: ``AccessKeyId``/``SecretAccessKey``/``SessionToken`` of
            the principal to call as; the administrator key when omitted.
        source_ip: the simulated address the call comes from.
    """
    creds = credentials or {
        "AccessKeyId": settings.LOCAL_ACCESS_KEY_ID,
        "SecretAccessKey": settings.LOCAL_SECRET_ACCESS_KEY,
    }
    key = (service, region, creds["AccessKeyId"], source_ip, endpoint_url())
    with _lock:
        cached = _clients.get(key)
    if cached is not None:
        return cached

    # One session for all: a new session reloads botocore's models, which
    # costs a few tenths of a second per client. Sessions are not safe to
    # share across threads, so clients are made under the lock.
    with _lock:
        made = _session().client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=endpoint_url(),
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
            config=_CONFIG,
        )
        if source_ip:
            _add_header(made, settings.SOURCE_IP_HEADER, source_ip)
        _clients[key] = made
    return made


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


def _add_header(made: BaseClient, name: str, value: str) -> None:
    def before_sign(request: Any, **_: Any) -> None:
        request.headers[name] = value

    made.meta.events.register_first("before-sign.*.*", before_sign)

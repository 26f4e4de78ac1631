"""Connecting to the lab: which cloud it runs in, its region, clients and clock.

The lab runs either against the local cloud on this machine (``local``, the
default) or against a real AWS account (``aws``). Everything else in labkit
speaks the same AWS APIs in both modes; the :class:`Lab` object is the only
place that knows how the cloud is reached and how time passes in it.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config

from labkit.errors import ConfigError

logger = logging.getLogger(__name__)

MODES = ("local", "aws")
DEFAULT_REGION = "eu-west-2"
DEFAULT_STACK_NAME = "Security-Workshop"
MODE_ENV_VAR = "LABKIT_MODE"
REGION_ENV_VAR = "LABKIT_REGION"
# Where connect() looks for a region, after its own argument. The standard
# AWS variables count only in aws mode: a student's usual region must not
# move the local lab, whose notebooks and tests all assume one region.
_AWS_REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")

# Loopback endpoints have no per-bucket host names, so S3 must use paths.
_LOCAL_CONFIG = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 2, "mode": "standard"},
    connect_timeout=5,
    read_timeout=120,
)


def _isolated_session(region: str) -> boto3.Session:
    """Return a session that reads nothing from ``~/.aws`` or ``AWS_PROFILE``.

    The local lab must behave the same on every machine, whatever profiles
    or config files the student already has.
    """
    no_files = (None, None, os.devnull, None)
    core = botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": no_files,
            "credentials_file": no_files,
        }
    )
    return boto3.Session(botocore_session=core, region_name=region)


@dataclass
class Lab:
    """A connection to the lab's cloud, made by :func:`connect`.

    Attributes:
        mode: ``"local"`` for the local cloud, ``"aws"`` for a real account.
        region: the AWS region the lab lives in.
        stack_name: the CloudFormation stack that holds the lab.
        session: the boto3 session clients are made from.
        endpoint_url: the local cloud's URL (``None`` in aws mode).
    """

    mode: str
    region: str = DEFAULT_REGION
    stack_name: str = DEFAULT_STACK_NAME
    session: boto3.Session | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    _clients: dict[str, BaseClient] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _account_id: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(_mode_message(self.mode))
        if self.mode == "local" and not self.endpoint_url:
            raise ConfigError(
                "a local lab needs the local cloud's endpoint_url; "
                "use labkit.connect('local') to start it and connect"
            )
        if self.session is None:
            if self.mode == "local":
                self.session = _isolated_session(self.region)
            else:
                self.session = boto3.Session(region_name=self.region)

    def client(self, service: str) -> Any:
        """Return a boto3 client for ``service`` in the lab's region (cached).

        In local mode the client is aimed at the local cloud with the
        student's local administrator key; in aws mode it uses the session's
        credentials (its profile or the default credential chain).
        """
        cached = self._clients.get(service)
        if cached is not None:
            return cached

        assert self.session is not None
        self._check_service(service)
        if self.mode == "local":
            from labkit.local import settings

            made = self.session.client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=settings.LOCAL_ACCESS_KEY_ID,
                aws_secret_access_key=settings.LOCAL_SECRET_ACCESS_KEY,
                config=_LOCAL_CONFIG,
            )
        else:
            made = self.session.client(service, region_name=self.region)
        self._clients[service] = made
        return made

    def _check_service(self, service: object) -> None:
        """Refuse an unknown service name with the nearest real ones."""
        assert self.session is not None
        known = self.session.get_available_services()
        if service in known:
            return
        near = difflib.get_close_matches(str(service), known, n=3)
        hint = f"did you mean {', '.join(map(repr, near))}?" if near else ""
        raise ConfigError(
            f"{service!r} is not an AWS service name boto3 knows; {hint} "
            "use the API's service name, as in lab.client('guardduty')"
        )

    @property
    def account_id(self) -> str:
        """The account the lab's credentials belong to (STS, cached)."""
        if self._account_id is None:
            identity = self.client("sts").get_caller_identity()
            self._account_id = str(identity["Account"])
        return self._account_id

    def advance(self, minutes: float) -> None:
        """Let ``minutes`` of lab time pass.

        Locally the lab clock jumps forward and the local cloud runs
        everything that happens in that span (workloads, detections,
        notifications, alarms). In aws mode this really waits: it is the one
        place labkit sleeps.

        Raises:
            ConfigError: ``minutes`` is negative.
        """
        if not isinstance(minutes, int | float) or isinstance(minutes, bool):
            raise ConfigError(
                f"minutes must be a number, got {minutes!r}: "
                "pass it without quotes, as in lab.advance(5)"
            )
        if minutes < 0:
            raise ConfigError(
                f"minutes must be zero or more, got {minutes!r}: "
                "lab time only moves forward"
            )
        if self.mode == "local":
            from labkit.local import control

            assert self.endpoint_url is not None
            control.advance(self.endpoint_url, minutes)
            return
        logger.info("Waiting %.1f minutes for AWS", minutes)
        time.sleep(minutes * 60)

    def now(self) -> datetime:
        """Return the lab's current time, timezone-aware in UTC.

        Locally this is the lab clock; in aws mode it is the real time.
        """
        if self.mode == "local":
            from labkit.local import control

            assert self.endpoint_url is not None
            return control.now(self.endpoint_url)
        return datetime.now(UTC)


def _mode_message(value: object) -> str:
    allowed = ", ".join(repr(m) for m in MODES)
    return (
        f"unknown lab mode {value!r}: allowed modes are {allowed}; "
        f"pass it to labkit.connect(mode=...) or set the {MODE_ENV_VAR} "
        "environment variable"
    )


def _resolve_region(region: str | None, mode: str) -> str:
    """Pick the lab's region and check that GuardDuty is offered there."""
    sources = [
        ("the region argument", region),
        (REGION_ENV_VAR, os.environ.get(REGION_ENV_VAR)),
    ]
    if mode == "aws":
        sources += [(name, os.environ.get(name)) for name in _AWS_REGION_VARS]
    source, chosen = next(
        ((name, value.strip()) for name, value in sources if value and value.strip()),
        ("the default", DEFAULT_REGION),
    )
    session = _isolated_session(DEFAULT_REGION)
    offered = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("guardduty", partition)
    }
    if chosen not in offered:
        raise ConfigError(
            f"region {chosen!r} (from {source}) is not a region where GuardDuty "
            f"is offered, such as {DEFAULT_REGION!r} or 'us-east-1': correct "
            f"it, or leave it unset for {DEFAULT_REGION}"
        )
    return chosen


def _refuse_loopback_endpoints() -> None:
    """Stop aws mode from quietly talking to a local cloud.

    The ``AWS_ENDPOINT_URL`` variables that point the ``aws`` CLI at the local
    cloud would redirect boto3 too, so an "aws" lab would deploy locally.
    """
    for name, value in sorted(os.environ.items()):
        if not name.startswith("AWS_ENDPOINT_URL") or not value:
            continue
        host = urlsplit(value.strip()).hostname or ""
        if host in ("localhost", "::1") or host.startswith("127."):
            raise ConfigError(
                f"{name}={value} sends AWS calls to this machine, but the lab "
                f"is in aws mode: unset {name} (it is for the aws CLI against "
                "the local cloud), or connect with mode='local'"
            )


def connect(
    mode: str | None = None,
    *,
    region: str | None = None,
    profile: str | None = None,
    port: int | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
) -> Lab:
    """Connect to the lab, starting the local cloud if needed.

    Args:
        mode: ``"local"`` or ``"aws"``; when omitted, the ``LABKIT_MODE``
            environment variable, else ``"local"``.
        region: the region to work in; when omitted, ``LABKIT_REGION``, then
            in aws mode ``AWS_REGION`` or ``AWS_DEFAULT_REGION``, else
            ``eu-west-2``. A profile's configured region is not used: the
            lab's region is chosen on purpose.
        profile: in aws mode, a named AWS CLI profile to take credentials
            from; the default credential chain when omitted.
        port: in local mode, the local cloud's port (its default when
            omitted).
        stack_name: the lab's CloudFormation stack name.

    Returns:
        The connected :class:`Lab`.

    Raises:
        ConfigError: the mode or region is unknown, an option does not
            apply to the mode, or aws mode finds ``AWS_ENDPOINT_URL`` aimed
            at this machine.
    """
    chosen = mode if mode is not None else os.environ.get(MODE_ENV_VAR) or "local"
    chosen = chosen.strip().lower()
    if chosen not in MODES:
        raise ConfigError(_mode_message(mode if mode is not None else chosen))
    region = _resolve_region(region, chosen)

    if chosen == "local":
        if profile is not None:
            raise ConfigError(
                f"profile={profile!r} applies only to aws mode; the local "
                "lab always uses its own administrator key: drop profile, "
                "or connect with mode='aws'"
            )
        from labkit.local import server

        endpoint = server.ensure_running(port=port)
        lab = Lab("local", region, stack_name, endpoint_url=endpoint)
        logger.info("Connected to the local cloud at %s (%s)", endpoint, region)
        return lab

    if port is not None:
        raise ConfigError(
            f"port={port!r} applies only to local mode: drop port, "
            "or connect with mode='local'"
        )
    _refuse_loopback_endpoints()
    session = boto3.Session(profile_name=profile, region_name=region)
    lab = Lab("aws", region, stack_name, session=session)
    logger.info(
        "Connected to AWS in %s with profile %s", region, profile or "(default)"
    )
    return lab

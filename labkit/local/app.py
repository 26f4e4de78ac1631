"""Assembling the local cloud: moto, the gateway, the services, the clock.

Importing the service modules registers their operations and tick hooks; the
order of ``SERVICE_MODULES`` is the order in which each simulated minute runs
(instances act, flow logs are written, the detector looks, findings are
published, events are delivered).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import threading
import time
from datetime import datetime
from typing import Any

from moto.core.config import default_user_config
from moto.ec2.models import elastic_ip_addresses, elastic_network_interfaces
from werkzeug.serving import WSGIRequestHandler, make_server

from labkit.local import gateway, internal, protocol, settings
from labkit.local.clock import LabClock

logger = logging.getLogger(__name__)

SERVICE_MODULES = (
    "labkit.local.events",
    "labkit.local.lambdas",
    "labkit.local.lambda_code",
    "labkit.local.cloudformation",
    "labkit.local.guardduty",
    "labkit.local.workloads",
    "labkit.local.boot_calls",
    "labkit.local.detector",
)


class LocalCloud:
    """The local cloud in this process: serve it, advance it, stop it."""

    def __init__(self, *, port: int, start: datetime | None = None) -> None:
        self.port = port
        self.clock = LabClock(start)
        self.clock.start()
        self._last_request = time.monotonic()
        self._started = time.monotonic()

        _simulate_public_addresses()
        default_user_config["iam"]["load_aws_managed_policies"] = True
        default_user_config["lambda"]["use_docker"] = False
        for name in SERVICE_MODULES:
            importlib.import_module(name)
        gateway.RESET_HOOKS.append(_reset_stacks)

        self.gateway = gateway.Gateway()
        gateway.CONTROL.update(
            {
                "status": self._status,
                "clock": lambda _: {"now": self.clock.now().isoformat()},
                "clock/advance": self._advance,
                "cloudformation/settle": _settle_stacks,
            }
        )
        self.server = make_server(
            "127.0.0.1", port, self._app, threaded=True, request_handler=_QuietHandler
        )
        internal.configure(f"http://127.0.0.1:{port}")
        threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        self._last_request = time.monotonic()
        return self.gateway(environ, start_response)

    def _status(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "now": self.clock.now().isoformat(),
            "account_id": settings.LOCAL_ACCOUNT_ID,
            "uptime_s": round(time.monotonic() - self._started, 1),
        }

    def _advance(self, payload: dict[str, Any]) -> dict[str, Any]:
        minutes = payload.get("minutes")
        if not isinstance(minutes, int | float) or isinstance(minutes, bool):
            raise ValueError(f"minutes must be a number (got {minutes!r})")
        return self.clock.advance(float(minutes))

    def serve_forever(self, *, idle_stop_s: float) -> None:
        """Serve until shut down, or until idle for ``idle_stop_s`` seconds."""
        watchdog = threading.Thread(
            target=self._watch, args=(idle_stop_s,), daemon=True
        )
        watchdog.start()
        logger.info("local cloud serving on 127.0.0.1:%s", self.port)
        self.server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving; ``serve_forever`` then returns."""
        logger.info("local cloud stopping")
        self.server.shutdown()

    def _watch(self, idle_stop_s: float) -> None:
        while True:
            time.sleep(60)
            if time.monotonic() - self._last_request > idle_stop_s:
                logger.info("idle for %.0f s: stopping", idle_stop_s)
                self.shutdown()
                return


def _settle_stacks(payload: dict[str, Any]) -> dict[str, Any]:
    """Block until stack work is done or ``timeout`` (at most 5 s) passes."""
    from labkit.local.cloudformation import wait_for_stacks

    timeout = payload.get("timeout", 1.0)
    if not isinstance(timeout, int | float) or not 0 <= timeout <= 5:
        raise ValueError(f"timeout must be 0 to 5 seconds (got {timeout!r})")
    return {"settled": wait_for_stacks(float(timeout))}


def _reset_stacks() -> None:
    from labkit.local.cloudformation import reset_stacks

    reset_stacks()


def _simulate_public_addresses() -> None:
    # moto draws Elastic IPs from 127.0.0.0/8 and launch addresses from real
    # public ranges. Hand them out in order from documentation ranges instead
    # (RFC 5737), which are never routed, so nothing can be dialled.
    elastic = itertools.cycle(f"198.51.100.{n}" for n in range(10, 255))
    elastic_ip_addresses.random_ip = lambda: next(elastic)
    launched = itertools.cycle(f"192.0.2.{n}" for n in range(10, 255))
    elastic_network_interfaces.random_public_ip = lambda: next(launched)


_WARM_UP_CALLS = {
    "cloudtrail": "describe_trails",
    "cloudwatch": "describe_alarms",
    "config": "describe_config_rules",
    "dynamodb": "list_tables",
    "ec2": "describe_vpcs",
    "events": "list_rules",
    "iam": "list_roles",
    "lambda": "list_functions",
    "logs": "describe_log_groups",
    "s3": "list_buckets",
    "sns": "list_topics",
    "sqs": "list_queues",
    "ssm": "describe_parameters",
    "sts": "get_caller_identity",
}


def _warm_up() -> None:
    # moto builds each service's backend, and botocore loads each model, on
    # first use: seconds on a small machine. One cheap read per service now,
    # while the student reads the first cells, keeps the first real calls quick.
    started = time.monotonic()
    for service, read in _WARM_UP_CALLS.items():
        getattr(internal.client(service, settings.DEFAULT_REGION), read)()
    for service in protocol.LAB_SERVICES:
        protocol.service_model(service)
    logger.info("warmed up in %.1f s", time.monotonic() - started)


class _QuietHandler(WSGIRequestHandler):
    """Request handler that logs requests at DEBUG, not to stderr."""

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        logger.debug("%s %s", self.requestline, code)

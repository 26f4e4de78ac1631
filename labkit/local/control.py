"""The local cloud's control API, seen from outside its process.

These calls are not AWS APIs: they are how time passes and how the process
is checked in local mode, and only labkit's mode-aware code uses them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from labkit.errors import LocalCloudError
from labkit.local import settings


def request(
    endpoint_url: str,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    timeout: float = 600,
) -> dict[str, Any]:
    """POST ``payload`` to the control operation ``name`` and return its answer."""
    url = f"{endpoint_url.rstrip('/')}{settings.CONTROL_PREFIX}/{name}"
    data = json.dumps(payload or {}).encode()
    sent = urllib.request.Request(url, data=data, method="POST")
    sent.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(sent, timeout=timeout) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")
        try:
            detail = str(json.loads(detail)["error"])
        except (ValueError, KeyError, TypeError):
            pass
        message = f"the local cloud refused {name!r}: {detail}"
        raise LocalCloudError(message) from error
    except (urllib.error.URLError, OSError) as error:
        message = (
            f"the local cloud at {endpoint_url} did not answer ({error}); "
            "start it with `labkit local up` or labkit.connect()"
        )
        raise LocalCloudError(message) from error


def advance(endpoint_url: str, minutes: float) -> dict[str, Any]:
    """Advance the lab clock by ``minutes`` and run the simulation over them."""
    return request(endpoint_url, "clock/advance", {"minutes": minutes})


def now(endpoint_url: str) -> datetime:
    """Return the lab clock's current time."""
    return datetime.fromisoformat(request(endpoint_url, "clock")["now"])

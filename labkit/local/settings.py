"""Fixed facts of the local cloud: its account, region, keys and addresses.

Addresses are simulated: they appear in records and are never dialled.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "eu-west-2"
DEFAULT_PORT = 4599

# The student's administrator key in local mode. It is a placeholder that the
# local cloud maps to its account's root user; it opens nothing anywhere else.
LOCAL_ACCESS_KEY_ID = "AKIALABKITLOCAL00000"
LOCAL_SECRET_ACCESS_KEY = "labkit-local-placeholder-secret"

# Where the student's own calls are seen to come from: a documentation address
# (RFC 5737), never on the lab's threat list.
LAPTOP_IP = "203.0.113.25"

SOURCE_IP_HEADER = "X-Labkit-Source-Ip"
CONTROL_PREFIX = "/_labkit"


def lab_home() -> Path:
    """Return the lab's own state folder (``$LABKIT_HOME`` or ``~/.labkit``).

    The lab keeps its process files, logs and CLI profiles here and never in
    the user's ``~/.aws``.
    """
    home = Path(os.environ.get("LABKIT_HOME") or Path.home() / ".labkit")
    home.mkdir(parents=True, exist_ok=True)
    return home

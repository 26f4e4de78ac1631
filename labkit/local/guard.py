"""Keeping the local cloud on this machine: no connection leaves loopback.

Every address in the lab is simulated. The local cloud never needs the
network, so its process refuses any outbound connection to a non-loopback
address: a library that tried to reach the internet (or real AWS) fails at
once with a clear error instead of hanging or leaking a request.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

logger = logging.getLogger(__name__)

_real_connect = socket.socket.connect


class RemoteConnectionRefused(ConnectionRefusedError):
    """Raised for a connection to an address outside loopback."""


def _is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def guarded_connect(self: socket.socket, address: Any) -> Any:
    """Connect as usual, unless the destination is beyond loopback."""
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if not _is_loopback(host):
            message = (
                f"the local cloud does not connect beyond this machine "
                f"(refused {host!r}); every lab address is simulated"
            )
            logger.warning(message)
            raise RemoteConnectionRefused(message)
    return _real_connect(self, address)


def refuse_remote_connections() -> None:
    """Make every socket of this process refuse non-loopback destinations."""
    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]

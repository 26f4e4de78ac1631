"""Tests of the local cloud's refusal to connect beyond loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from labkit.local import guard


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test process behaves like the local cloud's for its duration."""
    monkeypatch.setattr(socket.socket, "connect", guard.guarded_connect)
    yield


@pytest.mark.parametrize("address", ["198.51.100.10", "10.0.0.8", "8.8.8.8"])
def test_remote_addresses_are_refused(guarded: None, address: str) -> None:
    """Documentation, private and public addresses alike are refused by name."""
    with (
        socket.socket() as probe,
        pytest.raises(guard.RemoteConnectionRefused, match=address),
    ):
        probe.connect((address, 443))


def test_loopback_is_allowed(guarded: None) -> None:
    """A listener on 127.0.0.1 is reached as usual."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.socket() as probe:
            probe.connect(listener.getsockname())

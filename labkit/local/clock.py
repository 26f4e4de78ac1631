"""The lab clock: the local cloud's time, which moves only forward.

The whole local cloud process runs on lab time (time-machine moves the
process's clocks), so moto's timestamps, credential expiry and every record
the lab writes agree with it. ``advance`` runs the simulation over a span of
lab time, one step at a time: each step moves the clock and then calls the
tick hooks in the order they were registered (workloads, detector,
publishing, alarms). No real time is slept.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

logger = logging.getLogger(__name__)

TickHook = Callable[[datetime, timedelta], None]

TICK_HOOKS: list[tuple[int, str, TickHook]] = []

MAX_ADVANCE_MINUTES = 7 * 24 * 60


def on_tick(name: str, *, order: int) -> Callable[[TickHook], TickHook]:
    """Register a function to run after each simulated step.

    Args:
        name: what the hook is, for the log.
        order: hooks run from the lowest order to the highest: instances act
            (10), records are written (20), lists refresh (30), the detector
            looks (40), findings are published (50), alarms are evaluated
            (60), and the step ends when triggered functions are done (90).
    """

    def register(hook: TickHook) -> TickHook:
        TICK_HOOKS.append((order, name, hook))
        TICK_HOOKS.sort(key=lambda entry: entry[0])
        return hook

    return register


class LabClock:
    """Owns the process's travel in time and runs the simulation steps."""

    def __init__(self, start: datetime | None = None) -> None:
        self._traveller = time_machine.travel(start or datetime.now(UTC), tick=True)
        self._coordinates: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Put the process on lab time."""
        self._coordinates = self._traveller.start()
        logger.info("lab clock started at %s", self.now().isoformat())

    def stop(self) -> None:
        """Return the process to real time."""
        self._traveller.stop()

    def now(self) -> datetime:
        """Return the current lab time (UTC)."""
        return datetime.now(UTC)

    def advance(self, minutes: float, *, step_minutes: float = 1.0) -> dict[str, Any]:
        """Move lab time forward by ``minutes``, simulating each step.

        Raises:
            ValueError: if ``minutes`` is negative, not finite or too large.
        """
        if not math.isfinite(minutes) or not 0 <= minutes <= MAX_ADVANCE_MINUTES:
            message = (
                f"minutes must be between 0 and {MAX_ADVANCE_MINUTES} "
                f"(got {minutes!r}); lab time only moves forward"
            )
            raise ValueError(message)
        with self._lock:
            started = self.now()
            remaining = minutes
            steps = 0
            while remaining > 1e-9:
                step = timedelta(minutes=min(step_minutes, remaining))
                self._coordinates.shift(step)
                self._tick(step)
                remaining -= step.total_seconds() / 60
                steps += 1
        return {
            "from": started.isoformat(),
            "now": self.now().isoformat(),
            "steps": steps,
        }

    def _tick(self, step: timedelta) -> None:
        now = self.now()
        for _, name, hook in TICK_HOOKS:
            logger.debug("tick %s at %s", name, now.isoformat())
            hook(now, step)

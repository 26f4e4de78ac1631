"""The labkit command: start, stop and inspect the local cloud.

labkit local up [--port N]    start it (or say where it already runs)
labkit local down             stop it
labkit local status           show whether it runs, where, and its lab time
labkit local advance MINUTES  move the lab clock forward
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from labkit.errors import ConfigError, LabError, LocalCloudError
from labkit.local import control, server, settings
from labkit.local.clock import MAX_ADVANCE_MINUTES


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(prog="labkit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="group", required=True)
    local = commands.add_parser("local", help="the local cloud")
    actions = local.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start the local cloud")
    up.add_argument("--port", type=int, default=None)
    actions.add_parser("down", help="stop the local cloud")
    actions.add_parser("status", help="show the local cloud's state")
    advance = actions.add_parser("advance", help="advance the lab clock")
    advance.add_argument("minutes", type=float)
    args = parser.parse_args(argv)

    try:
        if args.action == "up":
            print(f"local cloud running at {server.ensure_running(port=args.port)}")
        elif args.action == "down":
            stale = server.forget_stale_record()
            if stale is not None:
                print(stale)
            stopped = server.stop()
            print("local cloud stopped" if stopped else "local cloud was not running")
        elif args.action == "status":
            print(json.dumps(server.status(), indent=2))
        elif args.action == "advance":
            print(json.dumps(_advance(args.minutes), indent=2))
    except LabError as error:
        print(f"labkit: {error}", file=sys.stderr)
        return 1
    return 0


def _advance(minutes: float) -> dict[str, object]:
    """Advance the running local cloud's clock; never start a new, empty one."""
    if not 0 <= minutes <= MAX_ADVANCE_MINUTES:
        reason = (
            "lab time only moves forward"
            if minutes < 0
            else "advance in several steps for longer spans"
        )
        raise ConfigError(
            f"minutes must be between 0 and {MAX_ADVANCE_MINUTES} "
            f"(got {minutes:g}): {reason}"
        )
    current = server.status()
    if not current["running"]:
        raise LocalCloudError(
            f"the local cloud is not running (lab home {settings.lab_home()}), so "
            "there is no lab clock to advance: start it with `labkit local up`, "
            "then deploy the lab again (its state went with the last one)"
        )
    return dict(control.advance(current["endpoint"], minutes))


def run() -> None:
    """Entry point of the installed ``labkit`` script."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``labkit local status | head``): not an
        # error. Point stdout at nothing so the exit's flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    run()

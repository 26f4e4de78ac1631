"""The labkit command: start, stop and inspect the local cloud.

labkit local up [--port N]    start it (or say where it already runs)
labkit local down             stop it
labkit local status           show whether it runs, where, and its lab time
labkit local advance MINUTES  move the lab clock forward
"""

from __future__ import annotations

import argparse
import json
import sys

from labkit.errors import ConfigError, LabError
from labkit.local import control, server
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
            if not 0 <= args.minutes <= MAX_ADVANCE_MINUTES:
                message = (
                    f"minutes must be between 0 and {MAX_ADVANCE_MINUTES} "
                    f"(got {args.minutes:g}): lab time only moves forward"
                )
                raise ConfigError(message)
            url = server.ensure_running()
            print(json.dumps(control.advance(url, args.minutes), indent=2))
    except LabError as error:
        print(f"labkit: {error}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """Entry point of the installed ``labkit`` script."""
    sys.exit(main())


if __name__ == "__main__":
    run()

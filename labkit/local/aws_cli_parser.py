"""The AWS CLI's own parser, run in a child process to read command lines.

:mod:`labkit.local.aws_cli` starts this file by path, with ``python -I``, a
new home folder (whose AWS config only turns URL fetching off), placeholder
keys and no other variables, and writes one JSON object on its stdin:
``{"commands": [[word, ...], ...]}``, each command without its leading
``aws``. For each command this script runs the real ``awscli`` driver (the
project's pinned awscli) and stops it the moment the request would be sent:
two event handlers take the service, operation and parameters the CLI built
(``provide-client-params``) and raise out of the driver once botocore has
validated them (``before-call``). Nothing is sent, nothing reaches the real
stdout, and ``file://`` values are refused before the CLI would read them.
It writes a JSON list back, one result per command:

* ``{"kind": "call", "service", "operation", "params", "region",
  "command"}``: the one call the command makes;
* ``{"kind": "none", "reason"}``: the command calls no API (``configure``,
  ``help``, ``--version``);
* ``{"kind": "usage", "message"}``: the CLI refuses the command, with its
  own error message;
* ``{"kind": "unsupported", "message"}``: a form the local cloud does not
  play.

A child process, not the local cloud's own: the CLI reports errors by
writing to ``sys.stderr`` and calling ``sys.exit``, and adds log handlers
on each run, which a threaded server must not let it do to its process.

This file imports only the standard library and awscli.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import sys
from typing import Any

from awscli.clidriver import create_clidriver
from awscli.paramfile import LOCAL_PREFIX_MAP, PARAMFILE_DISABLED
from botocore import xform_name

# Commands that change only the instance's own files and call no API.
_LOCAL_ONLY = {"configure", "help", "history"}


class _Stop(BaseException):
    """Raised from a handler to leave the driver at once with a result.

    A BaseException, so that the driver's own ``except Exception`` (which
    would print the error and return 255) lets it through.
    """

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("kind"))
        self.result = result


def _unsupported(message: str) -> _Stop:
    return _Stop({"kind": "unsupported", "message": message})


def _on_top_level_args(
    parsed_args: Any, remaining_args: list[str], seen: dict[str, Any], **_: Any
) -> None:
    seen["region"] = parsed_args.region
    seen["command"] = parsed_args.command
    seen["subcommand"] = remaining_args[0] if remaining_args else None
    if parsed_args.command in _LOCAL_ONLY:
        reason = f"aws {parsed_args.command} calls no API"
        raise _Stop({"kind": "none", "reason": reason})
    if parsed_args.command == "s3":
        raise _unsupported(
            "the high-level 'aws s3' commands are not supported; use 'aws s3api'"
        )
    if parsed_args.profile:
        raise _unsupported(
            f"--profile {parsed_args.profile} is not supported: the local cloud "
            "keeps no CLI profiles; the instance's own role keys are used"
        )
    if parsed_args.endpoint_url:
        raise _unsupported("--endpoint-url is not supported: the local cloud is it")
    if parsed_args.sign_request is False:
        raise _unsupported(
            "--no-sign-request is not supported: every call to the local cloud "
            "is signed"
        )


def _on_help(**_: Any) -> None:
    raise _Stop({"kind": "none", "reason": "aws ... help calls no API"})


def _on_load_arg(event_name: str, param: Any, value: Any, **_: Any) -> None:
    """Refuse ``file://`` and ``fileb://`` values: the file is on the instance.

    Registered first, so the CLI's own handler never reads a local file.
    (``http(s)://`` values stay text: the parent's config file turns
    ``cli_follow_urlparam`` off, as CLI v2 on the lab's AMI behaves.)
    """
    qualified = ".".join(event_name.split(".")[1:])
    if qualified in PARAMFILE_DISABLED or getattr(param, "no_paramfile", None):
        return None
    text = value[0] if isinstance(value, list) and len(value) == 1 else value
    if isinstance(text, str) and text.startswith(tuple(LOCAL_PREFIX_MAP)):
        prefix = text.split("//", 1)[0]
        raise _unsupported(
            f"--{param.cli_name.lstrip('-')}: {prefix}// values are not supported: "
            "the file is on the instance; give the value on the command line"
        )
    return None


def _read(words: list[str]) -> dict[str, Any]:
    driver = create_clidriver()
    seen: dict[str, Any] = {}

    def on_params(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen["service"] = model.service_model.service_name
        seen["operation"] = model.name
        seen["params"] = copy.deepcopy(params)

    def on_call(**_: Any) -> None:
        raise _Stop({"kind": "call"})

    emitter = driver.session.get_component("event_emitter")
    emitter.register(
        "top-level-args-parsed",
        lambda **kwargs: _on_top_level_args(seen=seen, **kwargs),
    )
    emitter.register("doc-breadcrumbs", _on_help)
    emitter.register_first("load-cli-arg", _on_load_arg)
    emitter.register_last("provide-client-params.*.*", on_params)
    emitter.register("before-call.*.*", on_call)

    out, err = io.StringIO(), io.StringIO()
    status: Any = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = driver.main(words)
    except _Stop as stop:
        if stop.result["kind"] != "call":
            return stop.result
        return _call(seen)
    except SystemExit as exit_:
        status = exit_.code
    finally:
        # The driver adds a handler to the awscli logger on every run.
        logging.getLogger("awscli").handlers.clear()
    if status in (0, None):
        return {"kind": "none", "reason": "the command calls no API"}
    return {"kind": "usage", "message": _message(err.getvalue(), status)}


def _call(seen: dict[str, Any]) -> dict[str, Any]:
    operation = seen["operation"]
    if seen.get("subcommand") != xform_name(operation, "-"):
        return {
            "kind": "unsupported",
            "message": (
                f"aws {seen['command']} {seen.get('subcommand')} is a command of "
                "the CLI, not one API operation; only commands that are one "
                "operation are played"
            ),
        }
    try:
        params = json.loads(json.dumps(seen["params"]))
    except TypeError:
        return {
            "kind": "unsupported",
            "message": f"a parameter of {operation} is not text, numbers or JSON",
        }
    return {
        "kind": "call",
        "service": seen["service"],
        "operation": operation,
        "params": params,
        "region": seen.get("region"),
        "command": seen["command"],
    }


def _message(stderr: str, status: Any) -> str:
    """The CLI's error, without its usage text and list of valid choices."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    found = next((line for line in lines if line.startswith("aws: error:")), None)
    if found is None:
        return " ".join(lines) or f"the aws CLI exits with status {status}"
    if found.endswith(", valid choices are:"):
        hints = [line[2:] for line in lines if line.startswith("* ")]
        found = found.removesuffix(", valid choices are:")
        found += f"; maybe you meant {', '.join(hints)}" if hints else ""
    return found


def main() -> None:
    """Read the commands on stdin; write their results on stdout."""
    sys.argv[0] = "aws"
    request = json.loads(sys.stdin.read())
    results = [_read(list(words)) for words in request["commands"]]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()

"""The local cloud process: starting, finding, checking and stopping it.

One process on 127.0.0.1 serves every notebook and the ``aws`` CLI, like a
region of AWS shared by all of them. Its state lives as long as the process.
It writes only to its own log file in the lab's home folder (never to the
terminal or pipe that started it) and stops by itself after hours of idleness.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from labkit.errors import ConfigError, LocalCloudError, PortInUseError
from labkit.local import control, settings

logger = logging.getLogger(__name__)

SERVER_MODULE = "labkit.local.server"
STATE_FILE = "local-cloud.json"
LOG_FILE = "local-cloud.log"
START_TIMEOUT_S = 60.0
IDLE_STOP_S = 4 * 3600.0


def ensure_running(*, port: int | None = None) -> str:
    """Return the endpoint of the running local cloud, starting it if needed.

    A record whose process has ended, or whose pid now belongs to another
    program, is removed first (see :func:`forget_stale_record`).

    Args:
        port: the port to use; ``$LABKIT_PORT`` or 4599 when omitted.

    Raises:
        PortInUseError: the port is held by another program.
        LocalCloudError: the recorded local cloud does not answer, or it did
            not start in time.
    """
    wanted = _port(port)
    forget_stale_record()
    state = _read_state()
    if state is not None:
        url = _url(state["port"])
        if _answers(url):
            if port is not None and state["port"] != wanted:
                message = (
                    f"the local cloud already runs on port {state['port']}, "
                    f"not {wanted}; run `labkit local down` to restart it "
                    f"on another port"
                )
                raise ConfigError(message)
            return url
        message = (
            f"the lab's local cloud (pid {state['pid']}, recorded in "
            f"{_state_path()}) runs but does not answer on port "
            f"{state['port']}; run `labkit local down` to end it, then try again"
        )
        raise LocalCloudError(message)

    if not _port_free(wanted):
        message = (
            f"port {wanted} on 127.0.0.1 is taken by another program; choose "
            "another with LABKIT_PORT=<port> or `labkit local up --port <port>`"
        )
        raise PortInUseError(message)
    return _start(wanted)


def stop() -> bool:
    """Stop the local cloud if it runs; return whether one was stopped.

    Only the process the record names is signalled, and only once it is
    known to be this lab's local cloud: a record naming a process that has
    ended, or a pid now reused by another program, is removed and that
    program is left alone.
    """
    forget_stale_record()
    state = _read_state()
    if state is None:
        return False
    pid = state["pid"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        # A stopped process (Ctrl-Z, SIGSTOP) handles SIGTERM only once it
        # is continued.
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _state_path().unlink(missing_ok=True)
    logger.info("stopped the local cloud (pid %s)", pid)
    return True


def forget_stale_record() -> str | None:
    """Remove the local cloud's record if it no longer names the local cloud.

    A pid is reused once its process ends, so a record left by a local
    cloud that died without cleaning up (killed, or the machine restarted)
    may name an unrelated program. That program is never signalled.

    Returns:
        What was removed and why, for the user; None when there is no
        record or it names this lab's running local cloud.
    """
    state = _read_state()
    if state is None:
        return None
    pid = state["pid"]
    if not _pid_alive(pid):
        reason = "that process has ended"
    elif not _is_local_cloud(state):
        reason = "that pid now belongs to another program, which was left alone"
    else:
        return None
    _state_path().unlink(missing_ok=True)
    logger.info(
        "removed stale local cloud record %s: pid %s, %s", _state_path(), pid, reason
    )
    return f"removed a stale local cloud record naming pid {pid}: {reason}"


def status() -> dict[str, Any]:
    """Describe the local cloud: running or not, pid, port, lab time, log."""
    state = _read_state()
    info: dict[str, Any] = {"running": False, "log": str(_log_path())}
    if state is None or not _pid_alive(state["pid"]) or not _is_local_cloud(state):
        return info
    info.update(pid=state["pid"], port=state["port"], endpoint=_url(state["port"]))
    with contextlib.suppress(LocalCloudError):
        info.update(control.request(_url(state["port"]), "status", timeout=5))
        info["running"] = True
    return info


def _start(port: int) -> str:
    log = _log_path().open("ab")
    command = [sys.executable, "-m", SERVER_MODULE, "--port", str(port)]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    url = _url(port)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            message = (
                f"the local cloud exited at start (code {process.returncode}); "
                f"see its log at {_log_path()}"
            )
            raise LocalCloudError(message)
        if _answers(url):
            logger.info("local cloud started on %s (pid %s)", url, process.pid)
            return url
        time.sleep(0.1)
    process.kill()
    message = f"the local cloud did not answer within {START_TIMEOUT_S:.0f} s"
    raise LocalCloudError(f"{message}; see its log at {_log_path()}")


def _port(port: int | None) -> int:
    raw = port if port is not None else os.environ.get("LABKIT_PORT")
    if raw is None:
        return settings.DEFAULT_PORT
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 1024 <= value <= 65535:
        if port is not None:
            source, way_out = "port", "choose a free port in that range"
        else:
            source = "LABKIT_PORT"
            way_out = (
                f"set it to a free port in that range, or unset it for "
                f"{settings.DEFAULT_PORT}"
            )
        raise ConfigError(
            f"{source} must be a number from 1024 to 65535, got {raw!r}: {way_out}"
        )
    return value


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _state_path() -> Path:
    return settings.lab_home() / STATE_FILE


def _log_path() -> Path:
    return settings.lab_home() / LOG_FILE


def _read_state() -> dict[str, Any] | None:
    try:
        return dict(json.loads(_state_path().read_text()))
    except (FileNotFoundError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A process that has exited but not been reaped by its parent (the kernel
    # or shell that started it) is a zombie: gone for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_local_cloud(state: dict[str, Any]) -> bool:
    """Tell whether the recorded pid still runs this lab's local cloud.

    Its command line must run this module, and its start time must be the
    one recorded (when the record has it), which also tells apart another
    lab home's local cloud that was given the same pid.
    """
    pid = int(state["pid"])
    command = _command_line(pid)
    runs_server = any(
        flag == "-m" and module == SERVER_MODULE
        for flag, module in zip(command, command[1:], strict=False)
    )
    if not runs_server:
        return False
    recorded = state.get("started")
    return recorded is None or _start_time(pid) in (recorded, None)


def _command_line(pid: int) -> list[str]:
    """Return a process's arguments, or [] when they cannot be read."""
    if not _has_proc():
        # macOS and the BSDs have no /proc; ps gives the command as one line.
        return _ps(pid, "command").split()
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _start_time(pid: int) -> str | None:
    """Return when a process started, as this system tells it, or None."""
    if not _has_proc():
        return _ps(pid, "lstart") or None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 is the start time in clock ticks since boot. The command name
    # (field 2) may hold spaces and parentheses, so count from its end.
    return stat.rsplit(")", 1)[-1].split()[19]


def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


def _ps(pid: int, field: str) -> str:
    try:
        done = subprocess.run(
            ["ps", "-o", f"{field}=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _answers(url: str) -> bool:
    try:
        control.request(url, "status", timeout=2)
    except LocalCloudError:
        return False
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server itself will: a port left in TIME_WAIT by a stopped
        # local cloud is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _RealTimeFormatter(logging.Formatter):
    """Stamp log lines with the real time, not the lab clock's.

    The process runs on lab time, which jumps ahead; a log read across
    restarts must still go forward. The lab time is in the messages that
    need it.
    """

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        from time_machine import escape_hatch

        real = datetime.fromtimestamp(escape_hatch.time.time()).astimezone()
        return real.strftime("%Y-%m-%d %H:%M:%S") + f",{real.microsecond // 1000:03d}"


def main(argv: list[str] | None = None) -> None:
    """Run the local cloud in this process until it is told to stop."""
    parser = argparse.ArgumentParser(prog="labkit.local.server")
    parser.add_argument("--port", type=int, default=settings.DEFAULT_PORT)
    parser.add_argument("--start", help="lab clock start, ISO 8601 (default: now)")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(
        _RealTimeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    from labkit.local import app, guard

    guard.refuse_remote_connections()

    start = datetime.fromisoformat(args.start) if args.start else None
    cloud = app.LocalCloud(port=args.port, start=start)
    record = {
        "pid": os.getpid(),
        "port": args.port,
        "started": _start_time(os.getpid()),
    }
    _state_path().write_text(json.dumps(record))
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=cloud.shutdown).start()
    )
    try:
        cloud.serve_forever(idle_stop_s=IDLE_STOP_S)
    finally:
        state = _read_state()
        if state is not None and state.get("pid") == os.getpid():
            _state_path().unlink(missing_ok=True)


if __name__ == "__main__":
    main()

"""User data read with a bash parser: what runs once, what starts, what is data."""

from __future__ import annotations

import pytest

from labkit.local.shell_script import Program, read_programs


def boot(script: str) -> Program:
    """The user data's own program."""
    return read_programs(script)[0]


def run_words(script: str) -> list[tuple[str, ...]]:
    """The words of the commands the user data runs once, in order."""
    return [c.words for c in boot(script).runs()]


def skipped(script: str) -> dict[int, str]:
    """Why each command not run once is not, by line."""
    return {c.line: reason for c, reason in boot(script).skipped()}


def test_function_bodies_are_not_boot_commands() -> None:
    """f() { } and function f { } define; their bodies do not run at boot."""
    script = "\n".join(
        [
            "f() {",
            "  aws sts get-caller-identity",
            "}",
            "function g {",
            "  aws iam get-user",
            "}",
            "echo done",
        ]
    )
    assert run_words(script) == [("echo", "done")]
    assert skipped(script) == {
        2: "it is in the body of function f",
        5: "it is in the body of function g",
    }


def test_a_comment_ending_in_a_backslash_ends_at_its_line() -> None:
    """A backslash in a comment continues nothing: the next line is a command."""
    script = "# set the value \\\naws ssm get-parameter --name a\n"
    assert run_words(script) == [("aws", "ssm", "get-parameter", "--name", "a")]


def test_here_document_text_in_quotes_is_only_text() -> None:
    """echo "see <<EOF" starts no here-document; the lines after it still run."""
    script = 'echo "see <<EOF"\naws sts get-caller-identity\nEOF\n'
    assert run_words(script) == [
        ("echo", "see <<EOF"),
        ("aws", "sts", "get-caller-identity"),
        ("EOF",),
    ]


def test_here_document_bodies_are_data() -> None:
    """A here-document's body is written, not run, wherever it is."""
    script = "cat > /tmp/s.sh <<'EOF'\naws iam get-user\nEOF\necho after\n"
    assert run_words(script) == [("cat",), ("echo", "after")]
    assert skipped(script) == {}


def test_nothing_runs_after_exit() -> None:
    """Commands after a top-level exit never run; a conditional exit ends nothing."""
    script = "\n".join(
        [
            "false || exit 1",
            "aws sts get-caller-identity",
            "exit 0",
            "aws iam get-user",
        ]
    )
    program = boot(script)
    assert [c.line for c in program.runs()] == [1, 2, 3]
    assert skipped(script) == {
        1: "it is in the right side of ||",
        4: "it comes after the exit on line 3",
    }
    assert program.after_end(program.commands[-1])


def test_lists_subshells_loops_and_conditionals() -> None:
    """&& and ; lists run; subshells, loops, ifs and the right of || do not once."""
    script = "\n".join(
        [
            "(cd /tmp) && aws ssm get-parameter --name b; echo hi",
            "while true; do aws sts get-caller-identity; sleep 5; done &",
            "for i in 1 2; do aws s3api list-buckets; done",
            "if true; then aws ssm get-parameter --name a; fi",
            "echo two | tr a b 2>/dev/null",
            "{ echo grouped; } > /tmp/log",
        ]
    )
    assert run_words(script) == [
        ("aws", "ssm", "get-parameter", "--name", "b"),
        ("echo", "hi"),
        ("echo", "two"),
        ("tr", "a", "b"),
        ("echo", "grouped"),
    ]
    reasons = skipped(script)
    assert reasons[1] == "it is in a ( ) subshell"
    assert reasons[3] == "it is in a for loop"
    assert reasons[4] == "it is in an if statement"


def test_and_lists_share_a_chain_and_set_e_marks_errexit() -> None:
    """a && b are one chain; under set -e only the last of a list ends the script."""
    script = "set -e\naws sts get-caller-identity && aws iam get-user\necho x\n"
    first, second, third = boot(script).runs()[1:]
    assert first.chain == second.chain != third.chain
    assert (first.errexit, second.errexit, third.errexit) == (False, True, True)
    assert not any(c.errexit for c in boot("aws sts get-caller-identity\n").runs())


def test_words_lose_their_quotes_and_lines_join() -> None:
    """A backslash-newline joins lines; quotes go, the words inside stay whole."""
    script = 'aws ssm put-parameter --name=n \\\n  --value \'a b "c"\' --tier "Std"\n'
    (command,) = boot(script).runs()
    assert command.words == (
        "aws",
        "ssm",
        "put-parameter",
        "--name=n",
        "--value",
        'a b "c"',
        "--tier",
        "Std",
    )
    assert command.line == 1 and not command.expands


@pytest.mark.parametrize(
    ("line", "expands"),
    [
        ("echo '$HOME'", False),
        ('echo "$HOME"', True),
        ("echo `date`", True),
        ("echo \\$HOME", False),
        ('echo "it\'s" $(id)', True),
        ("echo $'a\\tb'", True),
        ("echo *.txt", True),
        ("echo '*.txt'", False),
        ("echo ~/x", True),
        ("echo {a,b}", True),
        ("echo --item='{\"a\": 1}'", False),
    ],
)
def test_shell_expansion_is_marked(line: str, expands: bool) -> None:
    """What bash would expand is marked, quoted text is not."""
    (command,) = boot(line).runs()
    assert command.expands is expands


def test_assignments_before_a_command_and_exported_aws_variables() -> None:
    """VAR=x cmd and an earlier export AWS_* change the command's environment."""
    script = (
        "VAR=x aws sts get-caller-identity\n"
        "export AWS_PROFILE=p HOME=/root\n"
        "aws iam get-user\n"
    )
    first, second = boot(script).runs()
    assert first.environment == ("VAR",)
    assert second.environment == ("AWS_PROFILE",)


def test_a_started_script_is_the_here_document_written_before() -> None:
    """cat > FILE <<'EOF' then systemd-run FILE: the body is the started program."""
    script = "\n".join(
        [
            "#!/bin/bash",
            "cat > /usr/local/bin/p.sh <<'EOF'",
            "#!/bin/bash",
            "while true; do",
            "  ping -c 10 192.0.2.7",
            "  sleep 50",
            "done",
            "EOF",
            "chmod +x /usr/local/bin/p.sh",
            "systemd-run --unit=p /usr/local/bin/p.sh",
        ]
    )
    user_data, started = read_programs(script)
    assert [c.name for c in user_data.runs()] == ["cat", "chmod", "systemd-run"]
    assert (started.name, started.line) == ("/usr/local/bin/p.sh", 10)
    ping = next(c for c in started.commands if c.name == "ping")
    assert ping.line == 5
    assert started.repeats(ping)
    assert started.sleep_seconds(ping.loop) == 50


def test_background_and_nohup_start_programs() -> None:
    """cmd &, nohup cmd and setsid cmd start a program of that one command."""
    script = "nohup ping 192.0.2.1 > /dev/null 2>&1 &\nsetsid sh /opt/x.sh\nping -c 2 192.0.2.2 &\n"
    _, *started = read_programs(script)
    assert [p.name for p in started] == [
        "ping 192.0.2.1",
        "/opt/x.sh",
        "ping -c 2 192.0.2.2",
    ]
    assert [c.words for c in started[0].runs()] == [("ping", "192.0.2.1")]


def test_a_written_file_never_started_is_no_program() -> None:
    """A here-document written to a file that nothing starts is only a file."""
    script = "cat > /etc/p.sh <<'EOF'\nping 192.0.2.1\nEOF\n"
    assert len(read_programs(script)) == 1


def test_an_unquoted_here_document_that_expands_is_not_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """bash expands $x as it writes <<EOF: the started script is not guessed."""
    script = "cat > /opt/p.sh <<EOF\nping $TARGET\nEOF\nnohup /opt/p.sh &\n"
    assert len(read_programs(script)) == 1
    assert "/opt/p.sh, started on line 4, is not played" in caplog.text


def test_an_endless_loop_ends_the_script() -> None:
    """Nothing after a foreground while true loop runs."""
    script = "while true; do sleep 60; done\necho never\n"
    assert skipped(script)[2] == "it comes after the endless loop on line 1"


def test_a_script_bash_cannot_parse_gives_no_commands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A syntax error is named with its line, and nothing is played."""
    assert read_programs("echo ok\nif then fi\n") == (Program("user data", 1, ()),)
    assert "user data is not valid bash" in caplog.text

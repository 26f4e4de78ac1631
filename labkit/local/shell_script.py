"""The commands a user data script runs once, read without running a shell.

cloud-init runs an instance's user data once, at its first boot. The lines
that run then are the script's top-level simple commands: not the body of a
here-document (text fed to another command, often a script for later), and
not the body of a loop or a conditional, whose runs depend on the shell. This
module finds those commands, with the words a POSIX shell would give them,
so that the local cloud can play the ones it knows.

Shell expansion (``$VAR``, ``$(...)``, backquotes outside single quotes) is
not performed: a command on a line that uses it is marked, so that its
player can refuse it rather than run it with the wrong words.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_HEREDOC = re.compile(r"(?<!<)<<-?(?!<)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_SEPARATORS = {";", "&&", "||", "|", "&", "|&", ";;"}
_REDIRECTIONS = {">", ">>", "<", ">&", "<&", "&>", "&>>", ">|", "<<", "<<-", "<<<"}
_OPENERS = {"while", "until", "for", "if", "case", "select", "{", "("}
_CLOSERS = {"done", "fi", "esac", "}", ")"}


@dataclass(frozen=True)
class Command:
    """One simple command of a script.

    Attributes:
        words: the command's words, quotes removed, redirections dropped.
        line: the 1-based line of the script the command starts on.
        expands: whether the shell would expand part of it (``$``, backquote).
    """

    words: tuple[str, ...]
    line: int
    expands: bool


def boot_commands(script: str) -> list[Command]:
    """Return the top-level simple commands of ``script``, in order.

    Commands inside here-documents, loops, conditionals, groups and
    subshells are left out: they do not surely run, once, at boot.
    """
    found: list[Command] = []
    depth = 0
    for number, code, expands in _logical_lines(script):
        for words in _simple_commands(code):
            first = words[0]
            if first in _OPENERS:
                depth += 1
            elif first in _CLOSERS:
                depth = max(0, depth - 1)
            elif depth == 0 and first not in {"do", "then", "else", "elif"}:
                found.append(Command(tuple(words), number, expands))
    return found


def _logical_lines(script: str) -> list[tuple[int, str, bool]]:
    """Join continued lines, drop comments and here-document bodies."""
    lines = script.splitlines()
    logical: list[tuple[int, str, bool]] = []
    index = 0
    while index < len(lines):
        start = index
        text = lines[index]
        while text.endswith("\\") and index + 1 < len(lines):
            index += 1
            text = text[:-1] + lines[index]
        index += 1
        code, expands = _scan(text)
        heredoc = _HEREDOC.search(code)
        if heredoc:
            terminator = heredoc.group(2)
            while index < len(lines) and lines[index].strip() != terminator:
                index += 1
            index += 1
        if code.strip():
            logical.append((start + 1, code, expands))
    return logical


def _simple_commands(text: str) -> list[list[str]]:
    """Split one logical line into simple commands, without redirections."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as error:
        logger.warning("cannot read script line %r: %s", text[:60], error)
        return []
    commands: list[list[str]] = [[]]
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
        elif token in _SEPARATORS:
            commands.append([])
        elif token in _REDIRECTIONS:
            skip_next = True
            # A file descriptor written before the operator, as in 2>file.
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def _scan(text: str) -> tuple[str, bool]:
    """Cut a trailing comment; say whether the shell would expand anything.

    Single quotes keep everything literal; double quotes keep ``$`` and
    backquote active; a backslash outside single quotes escapes one character.
    """
    quote = ""
    expands = False
    index = 0
    while index < len(text):
        char = text[index]
        if quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            index += 1
        elif char in "$`":
            expands = True
        elif quote == '"':
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index], expands
        index += 1
    return text, expands

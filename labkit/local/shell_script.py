"""What a user data script runs, read with a bash parser and without a shell.

cloud-init runs an instance's user data once, at its first boot. The script
is parsed with tree-sitter-bash into :class:`Program` records, each holding
every simple command of one script, with the words bash would give it and
where it sits, so that the local cloud can play the commands it knows.

Run once, when a program starts (:meth:`Program.runs`): its top-level simple
commands, also as parts of ``&&`` lists and pipelines, up to a top-level
``exit``, ``exec`` or endless ``while true`` loop. Not run once, each with
its reason (:meth:`Program.skipped`): function bodies; loop, ``if`` and
``case`` bodies; ``( )`` subshells; the right side of ``||``; command
substitutions; anything after the end. (A ``{ }`` group runs as its lines
would.) A here-document's body is data, never commands.

Started, to keep running: a program that a top-level command starts with
``systemd-run``, ``nohup`` or ``setsid``, or puts in the background with
``&``. If what is started is a file that an earlier top-level ``cat`` or
``tee`` wrote from a here-document (``cat > FILE <<'EOF'``), that body is
the started program's script; otherwise the program is the one command.
:func:`read_programs` gives the user data first, then each started program.
The commands of a started program's ``while``/``until`` loops repeat for as
long as the instance runs (:meth:`Program.repeats`). A here-document whose
delimiter is not quoted is expanded by bash as it is written, so a script
written by one is not read (a warning says so).

Shell expansion (``$VAR``, ``$(...)``, backquotes, globs, ``~``, braces,
``$'...'``) is not performed: a command using it is marked, so that its
player can skip it rather than run it with the wrong words. A script that
tree-sitter-bash cannot parse gives no commands, with a warning.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from tree_sitter import Node

from labkit.local import shell_words
from labkit.local.shell_words import descendants, outermost, read_word, text

logger = logging.getLogger(__name__)

_SUBSTITUTIONS = {"command_substitution", "process_substitution"}
_GROUPS = {
    "subshell": "a ( ) subshell",
    "if_statement": "an if statement",
    "case_statement": "a case statement",
    "for_statement": "a for loop",
    "c_style_for_statement": "a for loop",
}
# Parts of a compound statement that only hold its statements.
_BODIES = {"do_group", "else_clause", "elif_clause", "case_item"}
_LOOPS = ("a while loop", "an until loop")
_STARTERS = {"systemd-run", "nohup", "setsid"}


@dataclass(frozen=True)
class Command:
    """One simple command of a script.

    Attributes:
        words: the command's words, quotes removed, redirections dropped.
        line: the 1-based line of the user data the command starts on.
        expands: whether bash would expand part of it (see the module).
        environment: variables it gets beyond the instance's own: ``VAR=x``
            before it, and ``AWS_*`` variables exported earlier.
        context: what holds it, outermost first; empty at top level.
        loop: the innermost ``while``/``until`` loop holding it (an id).
        chain: the ``&&`` list it is part of: a command runs only if those
            before it in its chain succeeded (each command of a pipeline is
            a chain of its own).
        errexit: whether its failure ends the script (``set -e`` is on and
            bash does not ignore this command's status).
    """

    words: tuple[str, ...]
    line: int
    expands: bool = False
    environment: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    loop: int | None = None
    chain: int = 0
    errexit: bool = False

    @property
    def name(self) -> str:
        """The command's name without its folder, such as ``aws``."""
        return PurePosixPath(self.words[0]).name if self.words else ""


@dataclass(frozen=True)
class Program:
    """A script that runs: the user data at boot, or a program it starts.

    Attributes:
        name: ``"user data"``, or the started file or command.
        line: the line of the user data that starts it.
        commands: every simple command it holds, in order.
        end: how many of ``commands`` come before its end, and what ends it
            (``"exit on line 7"``); None if it runs to its last line.
    """

    name: str
    line: int
    commands: tuple[Command, ...]
    end: tuple[int, str] | None = None

    def runs(self) -> list[Command]:
        """The commands that run once, in order, when the program starts."""
        count = self.end[0] if self.end else len(self.commands)
        return [c for c in self.commands[:count] if not c.context]

    def skipped(self) -> list[tuple[Command, str]]:
        """The other commands, each with why it does not surely run once."""
        found = []
        for command in self.commands:
            if self.after_end(command) and self.end:
                found.append((command, f"it comes after the {self.end[1]}"))
            elif command.context:
                found.append((command, f"it is in {command.context[0]}"))
        return found

    def after_end(self, command: Command) -> bool:
        """Whether ``command`` comes after the program's end, so never runs."""
        return self.end is not None and command in self.commands[self.end[0] :]

    def repeats(self, command: Command) -> bool:
        """Whether ``command`` runs again and again: only loops hold it."""
        if self.after_end(command):
            return False
        return bool(command.context) and all(c in _LOOPS for c in command.context)

    def sleep_seconds(self, loop: int | None) -> float:
        """The seconds one round of ``loop`` sleeps, by its ``sleep`` commands."""
        total = 0.0
        for command in self.commands:
            if loop is not None and command.loop == loop and command.name == "sleep":
                total += shell_words.duration(command.words[1:])
        return total


@functools.lru_cache(maxsize=64)
def read_programs(script: str) -> tuple[Program, ...]:
    """Return the user data's program, then each program it starts, in order."""
    walker = _Walker(errexit=shell_words.shebang_errexit(script))
    if walker.read(script, "user data"):
        return (walker.program("user data", 1), *walker.started)
    return (Program("user data", 1, ()),)


@dataclass(frozen=True)
class _Where:
    """Where a statement is: what holds it and how bash treats its status."""

    context: tuple[str, ...] = ()
    loop: int | None = None
    chain: int = 0
    checked: bool = True
    background: bool = False

    def inside(self, label: str, loop: int | None = None) -> _Where:
        inner = self.loop if loop is None else loop
        return _Where((*self.context, label), inner, self.chain, False)


@dataclass
class _Walker:
    """Collects the commands of one script, walking its tree in order."""

    errexit: bool = False
    first_line: int = 1
    commands: list[Command] = field(default_factory=list)
    started: list[Program] = field(default_factory=list)
    files: dict[str, tuple[str, int] | None] = field(default_factory=dict)
    exported: list[str] = field(default_factory=list)
    end: tuple[int, str] | None = None
    chains: int = 0

    def read(self, script: str, name: str) -> bool:
        """Walk ``script``; False (with a warning) if bash cannot parse it."""
        root = shell_words.parse(script)
        if root.has_error:
            bad = next(
                (n for n in descendants(root) if n.is_error or n.is_missing), root
            )
            logger.warning(
                "%s is not valid bash (tree-sitter-bash finds an error near "
                "line %s): none of it is played",
                name,
                self.line(bad),
            )
            return False
        self.block(root, _Where())
        return True

    def program(self, name: str, line: int) -> Program:
        """The program read, started on ``line``."""
        return Program(name, line, tuple(self.commands), self.end)

    def line(self, node: Node) -> int:
        return node.start_point.row + self.first_line

    def block(self, node: Node, where: _Where) -> None:
        """Walk the statements of a program or a body, each its own chain."""
        for child in node.named_children:
            if child.type in _BODIES:
                self.block(child, where)
            elif child.type not in ("comment", "word", "variable_name", "number"):
                following = child.next_sibling
                self.chains += 1
                self.statement(
                    child,
                    replace(
                        where,
                        chain=self.chains,
                        background=following is not None and following.type == "&",
                    ),
                )

    def statement(self, node: Node, where: _Where) -> None:
        """Walk one statement."""
        kind = node.type
        if kind == "command":
            self.command(node, where)
        elif kind == "redirected_statement":
            body = node.child_by_field_name("body")
            if body is not None:
                self.statement(body, where)
            self.redirects(node, body, where)
        elif kind == "list":
            left, operator, *_, right = node.children
            self.statement(left, replace(where, checked=False, background=False))
            if operator.type == "||":
                where = where.inside("the right side of ||")
            self.statement(right, where)
        elif kind in ("pipeline", "negated_command"):
            parts = node.named_children
            for part in parts:
                self.chains += 1
                last = kind == "pipeline" and part == parts[-1]
                checked = last and where.checked
                self.statement(part, replace(where, chain=self.chains, checked=checked))
        elif kind == "while_statement":
            self.loop(node, where)
        elif kind == "function_definition":
            name = text(node.child_by_field_name("name"))
            body = node.child_by_field_name("body")
            if body is not None:
                self.block(body, where.inside(f"the body of function {name}"))
        elif kind == "compound_statement":
            # A { } group runs in the script's own shell, as its lines would.
            inner = where.inside("a { } group in the background")
            self.block(node, inner if where.background else where)
        elif kind in _GROUPS:
            self.block(node, where.inside(_GROUPS[kind]))
        else:
            if not where.context and kind == "declaration_command":
                self.exports(node)
            self.substitutions(node, where)

    def loop(self, node: Node, where: _Where) -> None:
        until = node.children[0].type == "until"
        self.block(node, where.inside(_LOOPS[until], loop=node.start_byte))
        condition = text(node.child_by_field_name("condition")).strip(" ;\n")
        if not where.context and not where.background:
            if condition in (("false",) if until else ("true", ":")):
                self.stop(f"endless loop on line {self.line(node)}")

    def command(self, node: Node, where: _Where) -> None:
        """Record a simple command; note what it starts, sets or ends."""
        self.substitutions(node, where)
        words, expands, environment = self.words(node)
        if not words:
            return
        line, top = self.line(node), not where.context and self.end is None
        found = Command(
            words=words,
            line=line,
            expands=expands,
            environment=(*environment, *self.exported),
            context=where.context,
            loop=where.loop,
            chain=where.chain,
            errexit=self.errexit and where.checked and not where.context,
        )
        name = found.name
        if top and (where.background or name in _STARTERS):
            if not where.background:
                self.commands.append(found)
            self.start(found)
            return
        if name == "exec" and len(words) > 1:
            found = replace(found, words=words[1:])
        self.commands.append(found)
        if top and name == "set":
            self.errexit = shell_words.errexit_after(words[1:], self.errexit)
        if top and (name == "exit" or (name == "exec" and len(words) > 1)):
            self.stop(f"{name} on line {line}")

    def words(self, node: Node) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
        """A command's words, whether it expands, and its ``VAR=x`` names."""
        name = node.child_by_field_name("name")
        parts = name.named_children[:1] if name is not None else []
        read = [
            read_word(part) for part in parts + node.children_by_field_name("argument")
        ]
        environment = tuple(
            text(child.child_by_field_name("name"))
            for child in node.named_children
            if child.type == "variable_assignment"
        )
        return tuple(w for w, _ in read), any(e for _, e in read), environment

    def substitutions(self, node: Node, where: _Where) -> None:
        """Walk the ``$( )`` and ``<( )`` commands inside ``node``."""
        found_here = [node] if node.type in _SUBSTITUTIONS else []
        for found in found_here or outermost(node, _SUBSTITUTIONS):
            self.block(found, where.inside("a command substitution"))

    def exports(self, node: Node) -> None:
        """Note the ``AWS_*`` variables ``export`` (or ``declare -x``) sets."""
        flags = [text(c) for c in node.named_children if text(c).startswith("-")]
        if text(node.children[0]) != "export" and not any("x" in f for f in flags):
            return
        for child in node.named_children:
            name = (
                child.child_by_field_name("name")
                if child.type == "variable_assignment"
                else child
            )
            if text(name).startswith("AWS_"):
                self.exported.append(text(name))

    def redirects(self, node: Node, body: Node | None, where: _Where) -> None:
        """Note files written from here-documents; walk substitutions in them."""
        for redirect in node.children_by_field_name("redirect"):
            if redirect.type != "heredoc_redirect":
                self.substitutions(redirect, where)
        for heredoc in outermost(node, {"heredoc_redirect"}):
            found = shell_words.here_document(heredoc)
            if found is None:
                continue
            content, written, readable = found
            self.substitutions(content, where)
            if body is None or body.type != "command" or where.context:
                continue
            for target in shell_words.written_files(node, self.words(body)[0]):
                self.files[target] = (written, self.line(content)) if readable else None

    def start(self, starter: Command) -> None:
        """Record the program that ``starter`` starts (or is, put in the background)."""
        target = list(starter.words)
        while target and PurePosixPath(target[0]).name in _STARTERS:
            target = shell_words.without_options(target[1:])
        if (
            target
            and PurePosixPath(target[0]).name in ("bash", "sh")
            and len(target) > 1
        ):
            target = target[1:]
        if not target:
            return
        if target[0] not in self.files:
            command = replace(starter, words=tuple(target), chain=0, errexit=False)
            self.started.append(Program(" ".join(target), starter.line, (command,)))
            return
        written = self.files[target[0]]
        if written is None:
            logger.warning(
                "%s, started on line %s, is not played: the here-document that "
                "writes it expands $ or backquotes as bash writes it",
                target[0],
                starter.line,
            )
            return
        inner = _Walker(
            errexit=shell_words.shebang_errexit(written[0]), first_line=written[1]
        )
        if inner.read(written[0], target[0]):
            self.started.extend(
                [inner.program(target[0], starter.line), *inner.started]
            )

    def stop(self, reason: str) -> None:
        if self.end is None:
            self.end = (len(self.commands), reason)

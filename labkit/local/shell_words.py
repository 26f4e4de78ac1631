"""Words of a tree-sitter-bash parse tree, as bash would pass them on.

tree-sitter-bash keeps a word's quotes and escapes; bash removes them before
a command sees its words. :func:`read_word` does that removal for the forms
it can read without running a shell (plain words, ``'...'``, ``"..."`` and
their concatenations) and says when bash would expand something instead
(``$VAR``, ``$(...)``, backquotes, ``$'...'``, an unquoted glob, a leading
``~``, a brace list): the word's text is then only its source.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

_LANGUAGE = Language(tree_sitter_bash.language())

# Node types whose value bash computes when it runs the command.
EXPANSIONS = {
    "simple_expansion",
    "expansion",
    "command_substitution",
    "process_substitution",
    "arithmetic_expansion",
    "ansi_c_string",
    "translated_string",
    "brace_expression",
}
# Unquoted text bash would expand: a leading ~, a glob, a brace list.
_UNQUOTED_EXPANSION = re.compile(r"^~|[*?\[]|\{[^}]*(?:,|\.\.)[^}]*\}")
# systemd-run options whose value is the next word.
_VALUE_OPTIONS = {"-u", "--unit", "-p", "--property", "-E", "--setenv", "-M", "-H"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse(script: str) -> Node:
    """Parse ``script`` as bash; return the tree's root (``program``) node."""
    # A parser per call: tree-sitter parsers are not safe to share across
    # the local cloud's threads, and one costs microseconds.
    return Parser(_LANGUAGE).parse(script.encode("utf-8")).root_node


def descendants(node: Node) -> Iterator[Node]:
    """Every node under ``node``, depth first, in source order."""
    for child in node.children:
        yield child
        yield from descendants(child)


def outermost(node: Node, kinds: set[str]) -> Iterator[Node]:
    """The nodes of ``kinds`` under ``node``, not those inside one another."""
    for child in node.children:
        if child.type in kinds:
            yield child
        else:
            yield from outermost(child, kinds)


def text(node: Node | None) -> str:
    """The source text of ``node`` ("" for None)."""
    return node.text.decode("utf-8") if node is not None and node.text else ""


def read_word(node: Node) -> tuple[str, bool]:
    """Return a word as bash passes it on, and whether bash would expand it."""
    kind, source = node.type, text(node)
    if kind in EXPANSIONS:
        return source, True
    if kind == "raw_string":
        return source[1:-1], False
    if kind == "string":
        # In double quotes a backslash escapes only $ ` " \ and a newline.
        inner = re.sub(r'\\([$`"\\\n])', lambda m: m[1].strip("\n"), source[1:-1])
        return inner, any(d.type in EXPANSIONS for d in descendants(node))
    if kind == "concatenation":
        parts = [read_word(part) for part in node.children]
        unquoted = "".join(
            text(p) if p.type in ("word", "number") else "_" for p in node.children
        )
        expands = any(e for _, e in parts) or _expands_unquoted(unquoted)
        return "".join(w for w, _ in parts), expands
    return re.sub(r"\\(.)", r"\1", source, flags=re.S), _expands_unquoted(source)


def _expands_unquoted(source: str) -> bool:
    escaped = re.sub(r"\\.", "_", source, flags=re.S)
    return _UNQUOTED_EXPANSION.search(escaped) is not None


def duration(words: tuple[str, ...]) -> float:
    """The seconds ``sleep WORDS`` sleeps (``50``, ``5m``, ``1.5h``...)."""
    total = 0.0
    for word in words:
        found = _DURATION.fullmatch(word)
        if found:
            total += float(found[1]) * _SECONDS[found[2]]
    return total


def without_options(words: list[str]) -> list[str]:
    """The words after a starter's options (``systemd-run --unit=x CMD``)."""
    while words and words[0].startswith("-"):
        words = words[2:] if words[0] in _VALUE_OPTIONS else words[1:]
    return words


def shebang_errexit(script: str) -> bool:
    """Whether the script's ``#!`` line turns ``-e`` on (``#!/bin/bash -e``)."""
    return re.match(r"#!\S+\s+-\w*e", script) is not None


def errexit_after(args: tuple[str, ...], current: bool) -> bool:
    """Whether ``set ARGS`` leaves ``-e`` (errexit) on."""
    for index, arg in enumerate(args):
        flag = arg[:1]
        if flag in ("-", "+") and arg[1:2] != "-" and "e" in arg[1:].replace("o", ""):
            current = flag == "-"
        if arg in ("-o", "+o") and args[index + 1 : index + 2] == ("errexit",):
            current = arg == "-o"
    return current


def here_document(redirect: Node) -> tuple[Node, str, bool] | None:
    """Read a ``heredoc_redirect``: its body node, text, and if that is plain.

    Plain: the text is what bash writes, its delimiter being quoted
    (``<<'EOF'``) or the body holding nothing to expand.
    """
    body = next((c for c in redirect.children if c.type == "heredoc_body"), None)
    if body is None:
        return None
    start = text(
        next((c for c in redirect.children if c.type == "heredoc_start"), None)
    )
    written = text(body)
    if redirect.children[0].type == "<<-":
        written = re.sub(r"(?m)^\t+", "", written)
    quoted = any(mark in start for mark in "'\"\\")
    plain = not any(d.type in EXPANSIONS for d in descendants(body))
    return body, written, quoted or plain


def written_files(statement: Node, words: tuple[str, ...]) -> list[str]:
    """The files a ``cat`` or ``tee`` statement writes its input to."""
    name = words[0].rsplit("/", 1)[-1] if words else ""
    if name == "tee":
        return [w for w in words[1:] if not w.startswith("-")]
    if name != "cat" or len(words) > 1:
        return []
    return [
        read_word(target)[0]
        for redirect in outermost(statement, {"file_redirect"})
        if (target := redirect.child_by_field_name("destination")) is not None
        and any(c.type in (">", ">>", ">|") for c in redirect.children)
        and text(redirect.child_by_field_name("descriptor")) in ("", "1")
    ]

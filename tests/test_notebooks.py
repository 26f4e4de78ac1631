"""The notebooks' house rules, checked on the files as they are in git.

nbval runs the notebooks (see tests/run.sh); these tests check what a reader
and nbval rely on: a sentence before every cell, short cells with no logic of
their own, no real sleeping, outputs stored only where nbval compares them.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
MARK = "# NBVAL_CHECK_OUTPUT"
MAX_LINES = 10


def _cells(path: Path) -> list[nbformat.NotebookNode]:
    return list(nbformat.read(path, as_version=4).cells)


def _code_lines(cell: nbformat.NotebookNode) -> list[str]:
    return [line for line in cell.source.splitlines() if line.strip() and line != MARK]


def test_there_are_notebooks() -> None:
    """The lab's first two notebooks are present."""
    names = [path.name for path in NOTEBOOKS]
    assert names[:2] == [
        "00-getting-started.ipynb",
        "01-compromised-ec2-instance.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_follows_a_sentence(path: Path) -> None:
    """A Markdown cell stands right before each code cell."""
    cells = _cells(path)
    for index, cell in enumerate(cells):
        if cell.cell_type == "code":
            assert index > 0 and cells[index - 1].cell_type == "markdown", cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short_and_hold_no_logic(path: Path) -> None:
    """Cells have at most ten lines and define no functions or classes."""
    for cell in _cells(path):
        if cell.cell_type != "code":
            continue
        assert len(_code_lines(cell)) <= MAX_LINES, cell.source
        assert not re.search(r"^\s*(def|class|async def) ", cell.source, re.M), (
            cell.source
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_sleeps(path: Path) -> None:
    """No cell sleeps or polls in real time: time passes through lab.advance (P26)."""
    for cell in _cells(path):
        if cell.cell_type == "code":
            assert not re.search(r"\bsleep\s*\(|\bwhile\b", cell.source), cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stored_only_where_compared(path: Path) -> None:
    """Checked cells keep a run output for nbval; every other cell is stripped."""
    checked = 0
    for cell in _cells(path):
        if cell.cell_type != "code":
            continue
        if cell.source.startswith(MARK):
            checked += 1
            assert cell.execution_count is not None, (
                f"unrun checked cell:\n{cell.source}"
            )
            assert cell.outputs, f"checked cell with nothing to compare:\n{cell.source}"
        else:
            assert cell.execution_count is None and not cell.outputs, cell.source
    assert checked >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_are_clean(path: Path) -> None:
    """No stderr, figure repr or key id is kept in a stored output (P25)."""
    for cell in _cells(path):
        for output in cell.get("outputs", []):
            assert output.get("name") != "stderr", cell.source
            text = str(output.get("text", "")) + str(output.get("data", {}))
            assert "<Figure size" not in text
            assert not re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text)


def _shows_only_image(source: str) -> bool:
    """Whether a cell that draws ends so that no figure repr is printed (P25)."""
    if not re.search(r"\.plot\(|\bplt\.", source):
        return True
    last = source.rstrip().splitlines()[-1]
    return last.endswith(";") or "plt.close" in last


@pytest.mark.parametrize(
    ("source", "fine"),
    [
        ('ax = df.plot()\nax.set_xlabel("t")', False),
        ('ax = df.plot()\nax.set_xlabel("t");', True),
        ("fig, ax = plt.subplots()\nplt.close(fig)", True),
        ("df.head()", True),
    ],
)
def test_plot_rule_tells_repr_from_image(source: str, fine: bool) -> None:
    """The P25 rule refuses a plot cell that would print the figure's repr."""
    assert _shows_only_image(source) is fine


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_plot_cells_show_only_the_image(path: Path) -> None:
    """Every drawing cell of the notebooks follows the P25 rule."""
    for cell in _cells(path):
        if cell.cell_type == "code":
            assert _shows_only_image(cell.source), cell.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_questions_are_numbered_with_hidden_answers(path: Path) -> None:
    """Each notebook ends with numbered questions, each with a collapsed answer."""
    text = "\n".join(c.source for c in _cells(path) if c.cell_type == "markdown")
    section = text.split("## Questions", 1)[1].split("## Going further", 1)[0]
    questions = re.findall(r"^(\d+)\. ", section, re.M)
    assert questions == [str(n) for n in range(1, len(questions) + 1)]
    assert len(questions) >= 3
    assert section.count("<details>") == len(questions)

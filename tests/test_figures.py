"""Tests of labkit.figures, and of plot cells run in a real kernel (P25)."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from labkit import figures

SANITIZE = Path(__file__).parent / "nbval-sanitize.cfg"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _records() -> pd.DataFrame:
    starts = ["2024-05-01T12:00:10Z", "2024-05-01T12:00:40Z", "2024-05-01T12:01:05Z"]
    starts.append("2024-05-01T12:03:00Z")
    return pd.DataFrame(
        {
            "start": pd.to_datetime(starts, utc=True),
            "packets": ["10", "3", "10", "10"],
            "action": ["ACCEPT", "REJECT", "REJECT", "REJECT"],
        }
    )


def test_packets_per_minute_sums_by_minute_and_keeps_gaps_missing() -> None:
    """Packets sum per whole UTC minute and action; absent is NaN, not 0."""
    table = figures.packets_per_minute(_records())

    assert list(table.columns) == ["ACCEPT", "REJECT"]
    assert [str(t) for t in table.index] == [
        "2024-05-01 12:00:00+00:00",
        "2024-05-01 12:01:00+00:00",
        "2024-05-01 12:03:00+00:00",
    ]
    assert table.loc["2024-05-01 12:00", "ACCEPT"] == 10
    assert table.loc["2024-05-01 12:00", "REJECT"] == 3
    assert pd.isna(table.loc["2024-05-01 12:01", "ACCEPT"])
    assert table["REJECT"].sum() == 23


def test_plot_packets_by_action_returns_a_png_without_software_tag() -> None:
    """The chart is a PNG image whose bytes name no matplotlib version."""
    image = figures.plot_packets_by_action(_records(), title="Pings")

    assert image.format == "png"
    assert image.data.startswith(PNG_MAGIC)
    assert b"matplotlib" not in image.data.lower()


def test_sanitize_rule_hides_the_figure_size() -> None:
    """nbval's sanitize rule maps any figure repr to one fixed text (P25)."""
    config = configparser.ConfigParser()
    config.read(SANITIZE)
    rule = config["figure"]
    text = re.sub(rule["regex"], rule["replace"], "<Figure size 640x480 with 1 Axes>")
    assert text == "<Figure>"


def _run_plot_cells(
    monkeypatch: pytest.MonkeyPatch, backend: str | None
) -> list[list[Any]]:
    """Run a lab plot cell and a bare pandas plot cell in a real kernel."""
    if backend is None:
        monkeypatch.delenv("MPLBACKEND", raising=False)
    else:
        monkeypatch.setenv("MPLBACKEND", backend)
    setup = (
        "import pandas as pd\nfrom labkit import figures\n"
        "records = pd.DataFrame({'start': pd.to_datetime(['2024-05-01T12:00:10Z'],"
        " utc=True), 'packets': ['10'], 'action': ['ACCEPT']})"
    )
    cells = [
        setup,
        "figures.plot_packets_by_action(records, title='Pings')",
        "ax = records.assign(packets=10).plot(x='start', y='packets')\n"
        "ax.set_xlabel('t')",
    ]
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells]
    )
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    return [cell.outputs for cell in notebook.cells]


@pytest.mark.parametrize("backend", ["Agg", None], ids=["Agg", "default"])
def test_lab_plot_cell_shows_only_an_image_under_any_backend(
    monkeypatch: pytest.MonkeyPatch, backend: str | None
) -> None:
    """With or without MPLBACKEND=Agg, the cell shows one PNG and no repr (P25)."""
    _, lab_cell, bare_cell = _run_plot_cells(monkeypatch, backend)

    assert len(lab_cell) == 1
    (output,) = lab_cell
    assert output.output_type == "execute_result"
    assert set(output.data) == {"image/png", "text/plain"}
    assert "Figure" not in output.data["text/plain"]
    # The pyplot way, for contrast, leaves a version-dependent text repr.
    shown = "".join(str(o.get("data", {}).get("text/plain", "")) for o in bare_cell)
    assert "Text(" in shown


def test_importing_labkit_loads_no_plotting_library() -> None:
    """matplotlib loads only when labkit.figures is used, not with labkit."""
    probe = (
        "import sys, labkit; print('matplotlib' in sys.modules);"
        "labkit.figures; print('matplotlib' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert shown.stdout.split() == ["False", "True"]


def test_plot_without_records_says_so_and_warns_nothing() -> None:
    """No records gives a chart that says so, with no legend warning (P25)."""
    empty = _records().iloc[0:0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = figures.plot_packets_by_action(empty, title="Pings")
    assert image.data.startswith(PNG_MAGIC)
    assert figures.packets_per_minute(empty).empty

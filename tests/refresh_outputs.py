"""Store the outputs nbval compares, and only those: `make outputs`.

nbval (run with ``--nbval-lax``) compares a cell's output only when the cell
is marked ``# NBVAL_CHECK_OUTPUT`` and its stored copy has been run. This
tool runs every notebook in order on a fresh local cloud, as the tests do,
then keeps the outputs of the marked cells (which must be deterministic) and
strips every other output, so the notebooks in git stay small and free of
ids, times and account details.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
MARK = "# NBVAL_CHECK_OUTPUT"


def refresh(paths: list[Path]) -> None:
    """Run ``paths`` in order on one fresh local cloud and rewrite them."""
    from labkit.local import server

    os.environ["LABKIT_HOME"] = tempfile.mkdtemp(prefix="labkit-outputs-")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        os.environ["LABKIT_PORT"] = str(probe.getsockname()[1])
    try:
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            client = NotebookClient(
                notebook,
                timeout=600,
                resources={"metadata": {"path": str(path.parent)}},
            )
            client.execute()
            _keep_checked(notebook)
            nbformat.write(notebook, path)
            print(f"refreshed {path.relative_to(ROOT)}")
    finally:
        server.stop()


def _keep_checked(notebook: nbformat.NotebookNode) -> None:
    # Widget state (the progress bar's) is a run's leftover, not an output.
    notebook.metadata.pop("widgets", None)
    count = 0
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if cell.source.startswith(MARK):
            count += 1
            cell.execution_count = count
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = count
        else:
            cell.execution_count = None
            cell.outputs = []


if __name__ == "__main__":
    names = sys.argv[1:] or sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    refresh([ROOT / "notebooks" / name for name in names])

"""Settings for the notebook runs (nbval collects notebooks/ from the root).

Checked cells are compared on their text only: the HTML of a DataFrame is a
presentation of the same data whose markup changes between pandas releases.
"""

from __future__ import annotations

from typing import Any


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Leave HTML out of nbval's comparisons."""
    for item in items:
        parent = getattr(item, "parent", None)
        skip = getattr(parent, "skip_compare", None)
        if isinstance(skip, tuple) and "text/html" not in skip:
            parent.skip_compare = (*skip, "text/html")

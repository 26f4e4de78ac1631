"""Figures for the notebooks, drawn without pyplot and shown as PNG images.

A figure drawn through pyplot is shown differently by each backend: inline
it becomes an image, under ``MPLBACKEND=Agg`` (as in CI) it prints its repr
and ``plt.show()`` warns on stderr, and the repr's text changes between
matplotlib versions, so stored outputs stop matching. The lab draws on a bare
:class:`~matplotlib.figure.Figure` instead and returns an IPython image: a
plotting cell then shows one PNG, the same under every backend.
"""

from __future__ import annotations

import io
import logging

import pandas as pd
from IPython.display import Image
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

logger = logging.getLogger(__name__)

# Colours that stay apart for the common colour-vision deficiencies.
_ACTION_COLOURS = {"ACCEPT": "#0072B2", "REJECT": "#D55E00"}


def figure_image(figure: Figure, *, dpi: int = 100) -> Image:
    """Render ``figure`` to a PNG image that a notebook cell displays.

    The PNG carries no software tag, so it does not change with the
    matplotlib version.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return Image(data=buffer.getvalue(), format="png")


def packets_per_minute(records: pd.DataFrame) -> pd.DataFrame:
    """Sum the packets of flow-log records per minute and action.

    Args:
        records: flow-log records, as :func:`labkit.inventory.flow_log_records`
            returns them (``start``, ``packets`` and ``action`` are used).

    Returns:
        One row per whole UTC minute that has records, indexed by the
        minute, one column per action (``ACCEPT``, ``REJECT``). A minute with
        records of only one action has NaN for the other: missing is not 0.
    """
    minute = pd.to_datetime(records["start"], utc=True).dt.floor("min")
    packets = pd.to_numeric(records["packets"], errors="coerce")
    frame = pd.DataFrame(
        {"minute": minute, "action": records["action"], "packets": packets}
    )
    table = frame.pivot_table(
        index="minute", columns="action", values="packets", aggfunc="sum"
    )
    table.columns.name = None
    return table.reindex(columns=sorted(table.columns))


def plot_packets_by_action(records: pd.DataFrame, *, title: str) -> Image:
    """Draw packets per minute as bars, accepted and rejected stacked.

    Args:
        records: flow-log records (see :func:`packets_per_minute`).
        title: the figure's title.

    Returns:
        The chart as a PNG image; the cell that returns it shows only that.
    """
    table = packets_per_minute(records)
    figure = Figure(figsize=(7, 2.8), layout="constrained")
    axes = figure.add_subplot()
    width = 40 / 86_400  # forty seconds, in days: the unit of a date axis
    bottom = pd.Series(0.0, index=table.index)
    for action in table.columns:
        height = table[action].fillna(0)
        axes.bar(
            table.index,
            height,
            width=width,
            bottom=bottom,
            label=action,
            color=_ACTION_COLOURS.get(action),
        )
        bottom = bottom + height
    axes.set_title(title)
    axes.set_xlabel("minute (UTC)")
    axes.set_ylabel("packets")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if table.empty:
        # In AWS flow-log records can still be on their way.
        axes.text(0.5, 0.5, "no flow-log records yet", ha="center", va="center")
        axes.set_xticks([])
    else:
        axes.xaxis.set_major_formatter(DateFormatter("%H:%M", tz="UTC"))
        axes.legend(title="action", loc="upper left", bbox_to_anchor=(1.01, 1))
    logger.debug("Drew %d minutes of flow-log packets", len(table))
    return figure_image(figure)

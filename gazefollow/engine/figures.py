"""Writing matplotlib pictures (files only: the Agg backend, no display)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on these machines
import matplotlib.pyplot as plt  # noqa: E402,F401  (imported here so Agg is set first)


def save_figure(fig, path: Path, top_inches: float = 0.25, bottom_inches: float = 0.05) -> None:
    """Lay the panels out with fixed margins (in inches, room for a title and a legend) and
    write the picture. Not ``tight_layout``: it measures every tick and title, and cost more
    than half of a small run's evaluation."""
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - top_inches / height,
                        bottom=bottom_inches / height, wspace=0.06, hspace=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)

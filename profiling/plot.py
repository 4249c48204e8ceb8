"""The profile's picture: energy per second of audio per system, compute and radio stacked, one panel per link."""

from __future__ import annotations

import os
from pathlib import Path


def energy_png(profile: dict, path: Path) -> None:
    """Write the chart to `path` (written beside it, then renamed: never half a file)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = profile["links"]
    fig, axes = plt.subplots(1, len(links), figsize=(5 * len(links), 4.5), squeeze=False)
    for ax, (name, link) in zip(axes[0], links.items()):
        rows = link["systems"]
        names = [r["system"] for r in rows]
        compute = [1e3 * (r["compute_w"] or 0) for r in rows]
        radio = [1e3 * r["radio_w"] for r in rows]
        ax.bar(names, compute, label="compute", color="#4c72b0")
        ax.bar(names, radio, bottom=compute, label="radio", color="#dd8452")
        for i, r in enumerate(rows):
            if r["compute_w"] is None:
                ax.annotate("compute\nunknown", (i, radio[i]), ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("mW (energy per second of audio)")
        ax.set_title(f"{profile['board']} over {name}")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
        ax.legend(fontsize=8)
    fig.suptitle(f"{profile['task']} bundle, n_q {profile['n_q']}: compute (a lower bound) + radio; "
                 "demonstration model", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=120)
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)

"""`render_mode="rgb_array"` of the mapping environment: the mapping so far as a picture (one heat map per
placement kind -- temporal, spatial X, spatial Y -- of the factor each memory level holds for each loop
dimension, and each level's loop order), for SB3's video recorder and for people looking at episodes.

Drawn with matplotlib's Agg canvas (no display needed), imported only when an image is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import DIMS

SIZE = (8.0, 4.5)
"""Figure size in inches; at DPI 80 the image is 640 x 360 pixels."""
DPI = 80


def mapping_image(mapping: Mapping, level_names: Sequence[str], caption: Sequence[str]) -> np.ndarray:
    """An RGB image (height x width x 3, uint8) of `mapping`: per kind, levels (rows, DRAM on top) by dims
    (columns), each cell showing its factor (blank for 1) and shaded by log2 of it; `caption` lines below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    kinds = (("temporal", mapping.temporal), ("spatial X", mapping.spatial_x), ("spatial Y", mapping.spatial_y))
    top = max(1.0, max(float(np.log2(np.asarray(mat, dtype=float)).max()) for _k, mat in kinds))
    axes = fig.subplots(1, 3, sharey=True)
    n_levels = len(level_names)
    for ax, (kind, mat) in zip(axes, kinds, strict=True):
        f = np.asarray(mat, dtype=float)[:n_levels]
        ax.imshow(np.log2(f), cmap="Blues", vmin=0.0, vmax=top, aspect="auto")
        for (lvl, d), v in np.ndenumerate(f):
            if v > 1:
                ax.text(
                    d,
                    lvl,
                    f"{int(v)}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if np.log2(v) > top / 2 else "black",
                )
        ax.set_title(kind, fontsize=9)
        ax.set_xticks(range(len(DIMS)), list(DIMS), fontsize=8)
        ax.set_yticks(
            range(n_levels),
            [f"{name}\n{''.join(DIMS[d] for d in mapping.order[i])}" for i, name in enumerate(level_names)],
            fontsize=7,
        )
    fig.text(0.01, 0.01, "\n".join(caption), fontsize=8, family="monospace", va="bottom")
    fig.subplots_adjust(left=0.17, right=0.99, top=0.92, bottom=0.12 + 0.035 * len(caption), wspace=0.08)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()

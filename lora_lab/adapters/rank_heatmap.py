"""Rank-allocation heatmap: final rank per adapted matrix, layers x module kind (AdaLoRA paper Fig. 1/4).

`rank_heatmap_data` turns a ``{module_name: rank}`` pattern (AdaLoRA's ``summary()["rank_pattern"]``,
or any per-module rank pattern) into a table; `plot_rank_heatmap` draws it with matplotlib (Agg).
The layer index is the first all-digit component of the dotted module name (``encoder.layer.3.``);
the column is the module kind from `lora_lab.adapters.targets` (``q, k, v, o, ffn_gate, ffn_in,
ffn_out``; GPT-2's fused ``c_attn`` is shown as ``q,k,v``), unknown names fall back to their last
component. Names without a layer index go to a row labelled ``-``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lora_lab.adapters.targets import MODULE_KINDS

from lora_lab.figure_files import save_figure

KIND_ORDER = ("q", "k", "v", "o", "ffn_gate", "ffn_in", "ffn_out")


def module_column(name: str, model_type: str | None) -> str:
    """Heatmap column of a module: every kind whose pattern matches it, joined by commas."""
    kinds = [k for k, pattern in MODULE_KINDS.get(model_type or "", {}).items() if re.fullmatch(pattern, name)]
    return ",".join(kinds) if kinds else name.rsplit(".", 1)[-1]


def layer_index(name: str) -> int | None:
    for part in name.split("."):
        if part.isdigit():
            return int(part)
    return None


def rank_heatmap_data(rank_pattern: dict[str, int], model_type: str | None) -> tuple[list[str], list[str], list[list[float]]]:
    """``(row_labels, column_labels, values)``; rows are layers (ascending), missing cells are NaN.

    Raises ValueError if two modules land in the same cell (e.g. encoder and decoder of a seq2seq
    model share layer indices); plot those separately.
    """
    cells: dict[tuple[str, str], int] = {}
    for name, rank in rank_pattern.items():
        idx = layer_index(name)
        cell = ("-" if idx is None else str(idx), module_column(name, model_type))
        if cell in cells:
            raise ValueError(f"two modules map to layer {cell[0]} / {cell[1]} (one is {name}); plot them separately")
        cells[cell] = int(rank)
    rows = sorted({r for r, _ in cells}, key=lambda r: (r == "-", int(r) if r != "-" else 0))

    def col_key(c: str):
        first = c.split(",")[0]
        return (KIND_ORDER.index(first) if first in KIND_ORDER else len(KIND_ORDER), c)

    cols = sorted({c for _, c in cells}, key=col_key)
    values = [[float(cells[(r, c)]) if (r, c) in cells else float("nan") for c in cols] for r in rows]
    return rows, cols, values


def plot_rank_heatmap(
    rank_pattern: dict[str, int], model_type: str | None, out_path: str | os.PathLike, r_init: int | None = None, title: str | None = None
) -> Path:
    """Save the heatmap (PNG/PDF/SVG by suffix) and return its path. ``r_init`` fixes the colour scale."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    rows, cols, values = rank_heatmap_data(rank_pattern, model_type)
    data = np.ma.masked_invalid(np.array(values, dtype=float))
    vmax = r_init if r_init is not None else (float(data.max()) if data.count() else 1.0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(cols), 1.0 + 0.45 * len(rows)), constrained_layout=True)
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    im = ax.imshow(data, cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), labels=cols)
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_xlabel("module")
    ax.set_ylabel("layer")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(j, i, f"{int(v)}", ha="center", va="center", color="white" if v < 0.6 * vmax else "black", fontsize=8)
    total = sum(int(v) for row in values for v in row if v == v)
    ax.set_title(title or f"final rank per matrix (total {total})", fontsize=10)
    fig.colorbar(im, ax=ax, label="rank")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=120)
    plt.close(fig)
    return out

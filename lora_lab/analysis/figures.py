"""Figure helpers of `lora-lab analyze`: every figure is written as PNG and as PDF with TrueType
(Type 42) fonts embedded and no creation date (`lora_lab.figure_files.save_figure`), as publishers ask."""

from __future__ import annotations

from pathlib import Path

from lora_lab.figure_files import save_figure


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9})
    return plt


def save(fig, stem: Path) -> list[Path]:
    """``stem.png`` and ``stem.pdf``; closes the figure."""
    plt = pyplot()
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.tight_layout()
    save_figure(fig, paths[0], dpi=130)
    save_figure(fig, paths[1])
    plt.close(fig)
    return paths

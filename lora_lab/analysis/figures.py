"""Figure helpers of `lora-lab analyze`: every figure is written as PNG and as PDF with TrueType
(Type 42) fonts embedded (``pdf.fonttype = 42``), as publishers ask."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 9})
    return plt


def save(fig, stem: Path) -> list[Path]:
    """``stem.png`` and ``stem.pdf``; closes the figure."""
    plt = pyplot()
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths

"""The docs run as written: every shell block of README.md and docs/*.md is either executed here or
marked in the doc with what it needs that a test machine lacks.

A shell block is a fenced block tagged ``bash``/``sh``/``shell``/``console``, or an untagged one whose
lines start with a command (``lora-lab``, ``python``, ``pip``, ``bash``, ``sbatch``). A block is skipped
only when the line before its fence is ``<!-- needs: REASON -->`` with REASON one of `NEEDS`; every
other block runs with ``bash -e`` in an empty directory (``lora-lab``, ``.venv/bin/lora-lab`` and
``.venv/bin/python`` run this checkout; offline; ``runs/`` inside that directory) and must exit 0
within `TIMEOUT_S`. The fast test checks that every block is either marked or runnable-looking and
that markers use the vocabulary; the slow test executes the runnable blocks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: what a marked block needs that the test machine lacks
NEEDS = ("GPU", "Hub", "user data", "SLURM cluster", "network", "long run")
SHELL_TAGS = ("bash", "sh", "shell", "console")
COMMAND = re.compile(r"^\s*(\.venv/bin/)?(lora-lab|python|pip|bash|sbatch)\b")
MARKER = re.compile(r"^<!-- needs: (.+?) -->$")
TIMEOUT_S = 600


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    body: str
    needs: str | None  # the marker's reason, None when unmarked

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def shell_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        body = lines[i + 1:end]
        if fence.group(1) in SHELL_TAGS or (fence.group(1) == "" and any(COMMAND.match(line) for line in body)):
            previous = lines[i - 1].strip() if i else ""
            marker = MARKER.match(previous)
            blocks.append(Block(path, i + 1, "\n".join(body), marker.group(1) if marker else None))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for doc in DOCS for b in shell_blocks(doc)]
RUNNABLE = [b for b in ALL_BLOCKS if b.needs is None]


def test_every_block_is_run_or_marked_with_a_known_need():
    assert len(ALL_BLOCKS) >= 10 and RUNNABLE  # the extraction finds the docs' commands
    for block in ALL_BLOCKS:
        if block.needs is not None:
            reasons = [r.strip() for r in block.needs.split(",")]
            assert all(r in NEEDS for r in reasons), f"{block.where}: needs {block.needs!r}; allowed: {', '.join(NEEDS)}"


def _shims(work: Path) -> Path:
    """``bin/lora-lab`` and ``.venv/bin/{lora-lab,python}`` in ``work`` running this checkout."""
    bin_dir = work / "bin"
    for directory in (bin_dir, work / ".venv" / "bin"):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "lora-lab").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lora_lab.cli "$@"\n')
        (directory / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        for shim in ("lora-lab", "python"):
            (directory / shim).chmod(0o755)
    return bin_dir


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_unmarked_block_runs_as_written(block, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LORA_LAB_RUNS", "VIRTUAL_ENV")}
    env.update(PATH=f"{_shims(work)}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "-e", "-c", block.body], cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{block.where}\n{block.body}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"

"""Running ``lora-lab`` in-process in tests and checking what a refusal prints and leaves behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lora_lab.cli import main


def lora_lab(argv: list[str]) -> int:
    """``lora-lab ARGV`` in-process; its exit status (the train gate ends with ``SystemExit``)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def one_error(capsys, *words: str) -> str:
    """The one ``error:`` line on stderr (nothing else, no traceback), holding each of ``words``."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def md5s(root: Path) -> dict[str, str]:
    """md5 of every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}

"""One prompt -> target pair of the generation family (read by the schemas, rendered by the data module)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextExample:
    """One prompt -> target pair."""

    prompt: str
    target: str

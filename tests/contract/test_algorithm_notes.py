"""Docstrings and configs point to algorithm notes that exist in the repository (docs/algorithms/)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_referenced_note_exists_and_no_external_notes_are_cited():
    sources = [*ROOT.joinpath("lora_lab").rglob("*.py"), *ROOT.joinpath("conf").rglob("*.yaml"), *ROOT.joinpath("tests").rglob("*.py")]
    cited = set()
    for path in sources:
        text = path.read_text()
        assert "ALGORITHMS" + ".md" not in text, path
        cited |= set(re.findall(r"docs/algorithms/[\w.]+\.md", text))
    assert len(cited) >= 6
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert not missing


def test_every_registered_method_has_its_config_and_its_page():
    """A method is its file, its config (``conf/adapter/<name>.yaml``, whose ``method`` is the name) and
    its notes (``docs/algorithms/<name>.md``); nothing else lists it."""
    import yaml

    from lora_lab.adapters import METHODS

    for name in METHODS:
        config = ROOT / "conf" / "adapter" / f"{name}.yaml"
        assert config.is_file() and yaml.safe_load(config.read_text())["method"] == name, config
        assert (ROOT / "docs" / "algorithms" / f"{name}.md").is_file(), name

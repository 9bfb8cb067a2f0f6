"""Strict parsing of user files: input that could be read two ways is an error, never a silent choice.

Python's readers resolve ambiguity silently, always the same way: ``csv.DictReader`` keeps the last of
two columns named ``label`` (a header ``text,label,label`` labels every row from the third column),
``json.loads`` and YAML keep the last of two equal keys in one object (``{"label": "pos", "label":
"neg"}`` is ``neg``). The training then runs on data that is not what the file says. Here:

- `check_header` refuses a header with two columns of the same name (also after stripping spaces:
  ``label`` and `` label`` are one name to a reader, two to ``DictReader``);
- `loads_json` parses JSON with an ``object_pairs_hook`` that refuses a repeated key in any object,
  nested ones included;
- `load_yaml` is ``yaml.safe_load`` refusing repeated mapping keys;
- `read_json_file` reads a JSON file a command was pointed at (a result.json, an adapter's config):
  missing, unreadable or not JSON is one `ConfigError` naming the option and the file, not a traceback.

Each raises `AmbiguousInput` (message: what is repeated); callers add the file and line and raise
their one-line `ConfigError` for the key the user set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence


class AmbiguousInput(ValueError):
    """The text can be read more than one way (a repeated column or key); the message names it."""


def check_header(header: Sequence[str]) -> None:
    """Raise `AmbiguousInput` when two header cells name the same column."""
    seen: dict[str, str] = {}
    for name in header:
        norm = (name or "").strip()
        if norm in seen:
            same = "" if seen[norm] == name else f" ({seen[norm]!r} and {name!r} after stripping spaces)"
            raise AmbiguousInput(f"column {norm!r} appears twice in the header{same}; rename one")
        seen[norm] = name


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise AmbiguousInput(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def loads_json(text: str | bytes):
    """``json.loads`` refusing a repeated key (`AmbiguousInput`); syntax errors stay ``json.JSONDecodeError``."""
    return json.loads(text, object_pairs_hook=_unique_object)


def read_json_file(path, key: str):
    """The parsed JSON of ``path``; a file that is missing, unreadable, not UTF-8 or not JSON raises one
    `ConfigError` for ``key`` (the option that named it) with the file and the reason."""
    from lora_lab.errors import ConfigError

    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ConfigError(key, f"{path} does not exist") from None
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(key, f"{path} is not a readable JSON file ({err})") from None


def load_yaml(text: str):
    """``yaml.safe_load`` refusing a repeated key in any mapping (`AmbiguousInput`, with its line)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise AmbiguousInput(f"line {key_node.start_mark.line + 1}: key {key!r} appears twice in one mapping")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 -- a SafeLoader subclass

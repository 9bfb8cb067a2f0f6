"""Config values that become parts of a path are names, never paths.

A run directory is ``<runs_root>/<study>/<run_name>`` (``conf/hydra/default.yaml``) and ``run_name``
is ``<task.name>/<backbone.short_name>/<adapter tag>/lr<lr>-seed<seed><run_suffix>``
(``conf/train.yaml``). ``study`` and ``task.name`` are one path component each,
``backbone.short_name`` one or more (a Hub id ``org/name``; a local model path needs its own short
name), ``run_suffix`` is glued to the last one, and ``run_name`` (which a user may set whole) is a
relative path of such components. Without a check ``study=../../x`` or ``run_suffix=/../../y`` writes
outside the runs root, and ``study=''`` puts the runs straight into it.

`check_name`: non-empty, no ``/`` or NUL, not ``.`` / ``..``, no leading ``.`` (hidden, and the
temp-file prefix of `lora_lab.atomic`), no leading or trailing spaces. `check_suffix`: empty, or
text without ``/`` or NUL. `check_relative_path`: ``/``-separated components, each a name.
"""

from __future__ import annotations

from lora_lab.errors import ConfigError

RULE = "a name: not empty, no '/', not '.' or '..', no leading '.', no leading or trailing spaces"


def name_problem(value) -> str | None:
    """Why ``value`` is not a valid path component, or None."""
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    if value == "":
        return "is empty"
    if "/" in value or "\\" in value or "\0" in value:
        return "holds a path separator"
    if value in (".", ".."):
        return "is a relative directory"
    if value.startswith("."):
        return "starts with '.'"
    if value != value.strip():
        return "has leading or trailing spaces"
    return None


def check_name(key: str, value) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ConfigError(key, f"{value!r} {problem}; allowed: {RULE} (it becomes one directory of the run's path)")
    return value


def check_suffix(key: str, value) -> str:
    """A suffix glued to a name: empty, or text without a path separator."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or "/" in value or "\\" in value or "\0" in value or value != value.rstrip():
        raise ConfigError(key, f"{value!r}: allowed: empty or text without '/' and without trailing spaces (it is appended to the run dir's last part)")
    return value


def check_relative_path(key: str, value) -> str:
    """``a/b/c`` where every part is a name (`check_name`)."""
    if not isinstance(value, str) or value == "" or value.startswith("/"):
        raise ConfigError(key, f"{value!r}: allowed: a relative path of names ({RULE})")
    for part in value.split("/"):
        problem = name_problem(part)
        if problem is not None:
            raise ConfigError(key, f"{value!r}: part {part!r} {problem}; allowed: a relative path of names ({RULE})")
    return value


def check_run_path_names(resolved: dict) -> None:
    """Every config value of ``resolved`` that becomes a component of the run dir's path."""
    check_name("study", resolved.get("study"))
    check_suffix("run_suffix", resolved.get("run_suffix"))
    task, backbone = resolved.get("task") or {}, resolved.get("backbone") or {}
    if "name" in task:
        check_name("task.name", task["name"])
    if "short_name" in backbone:  # a Hub id org/name is two directories (conf/backbone/hub.yaml)
        check_relative_path("backbone.short_name", backbone["short_name"])
    if "run_name" in resolved:
        check_relative_path("run_name", resolved["run_name"])

"""The one exception type for bad user input.

Everything a user can get wrong (an unknown method, a rank out of range, a knob the chosen method does
not have, a target selection that matches nothing, a missing data file or column) raises
`ConfigError` with a single line that names the bad key and the allowed values. The CLI prints that
line and exits with status 2 instead of showing a traceback.
"""

import difflib
import math
import os
import re


#: a line break with the spaces around it: a `ConfigError` message becomes one line
LINE_BREAKS = re.compile(r"[ \t]*[\r\n]+[ \t]*")


class ConfigError(ValueError):
    """Invalid configuration or input data; the message is one line meant for the user (line breaks in
    ``message``, e.g. a library's error quoted in it, become spaces)."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {LINE_BREAKS.sub(' ', str(message)).strip()}")


def did_you_mean(name: str, allowed) -> str:
    """`` (did you mean `x`?)`` for the allowed name closest to ``name`` (difflib; else an allowed
    name that ``name`` starts with, e.g. ``rank`` -> ``r``), or ``""``."""
    allowed = [str(a) for a in allowed]
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if not close:
        close = sorted((a for a in allowed if name.startswith(a)), key=len, reverse=True)[:1]
    return f" (did you mean `{close[0]}`?)" if close else ""


def one_line(text: str) -> str:
    """A library's multi-line message (transformers' download errors span three) as one line."""
    return " ".join(str(text).split())


def show_tracebacks() -> bool:
    """``HYDRA_FULL_ERROR=1`` or ``LORA_LAB_DEBUG=1``: a failure shows its traceback, not one line."""
    return any(os.environ.get(var, "") not in ("", "0") for var in ("HYDRA_FULL_ERROR", "LORA_LAB_DEBUG"))


def checked_number(key: str, value, *, integer: bool = False, minimum=None, strict_min: bool = False, allow=()):
    """``value`` when it is a (finite) number >= / > ``minimum`` (or in ``allow``), else a `ConfigError`
    naming ``key``, the bound and the value."""
    if value in allow and not isinstance(value, bool):
        return value
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer and not float(value).is_integer():
        ok = False
    if ok and minimum is not None:
        ok = value > minimum if strict_min else value >= minimum
    if not ok:
        bound = "" if minimum is None else (f" > {minimum}" if strict_min else f" >= {minimum}")
        extra = f" or one of {', '.join(map(repr, allow))}" if allow else ""
        raise ConfigError(key, f"must be {kind}{bound}{extra}, got {value!r}")
    return int(value) if integer else value

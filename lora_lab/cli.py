"""``lora-lab`` command line: one subcommand per job.

- ``lora-lab train [hydra overrides]`` -- same as ``python -m lora_lab.train``.

Subcommands register themselves in `COMMANDS` (name -> (help, function taking argv)).
"""

from __future__ import annotations

import sys
from typing import Callable


def _train(argv: list[str]) -> int:
    from lora_lab import train

    sys.argv = ["lora-lab train", *argv]
    train.main()
    return 0


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "train": ("train one run (or a --multirun sweep) with Hydra overrides", _train),
}


def usage() -> str:
    lines = ["usage: lora-lab COMMAND [args]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (help_, _) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; allowed: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from lora_lab.errors import ConfigError

    try:
        return COMMANDS[name][1](rest) or 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

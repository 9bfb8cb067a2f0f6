"""The argument parser of every ``lora-lab`` subcommand that takes options: a bad command line is one
``error:`` line (exit 2) that names what was wrong and what is allowed, like every other bad input.

argparse's own ``error`` prints the whole usage block and then a message that does not list the
options (``unrecognized arguments: --bogus``); `CommandParser.error` prints one line instead:
``error: lora-lab report: unrecognized arguments: --bogus; allowed: --by, --nuisance, ...`` -- or, for a
missing argument, the command's usage on the same line. ``--help`` is unchanged.
"""

from __future__ import annotations

import argparse
import sys


class CommandParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors are one line on stderr, exit status 2."""

    def allowed(self) -> str:
        """The options and positional arguments this command takes, as the usage names them."""
        options = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        positionals = [a.metavar or a.dest for a in self._actions if not a.option_strings]
        return ", ".join([*options, *(str(p) for p in positionals)])

    def error(self, message: str):
        message = " ".join(message.split())
        if message.startswith("unrecognized arguments"):
            message += f"; allowed: {self.allowed()}"
        else:
            message += f"; usage: {' '.join(self.format_usage().split())[len('usage: '):]}"
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def no_arguments(command: str, argv: list[str]) -> None:
    """A command that takes no arguments refuses any in one line (exit 2)."""
    if argv:
        print(f"error: lora-lab {command}: unexpected argument {argv[0]!r}; allowed: none (lora-lab {command} takes no arguments)",
              file=sys.stderr)
        raise SystemExit(2)

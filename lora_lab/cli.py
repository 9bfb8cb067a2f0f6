"""``lora-lab`` command line: one subcommand per job.

- ``lora-lab train [hydra overrides]`` -- same as ``python -m lora_lab.train``.
- ``lora-lab sweep NAME [overrides] [dry_run=true]`` -- run a study (`lora_lab.sweeps.launch`).
- ``lora-lab report PATH... [--by ...] [--format ...] [--out DIR]`` -- tables and plots (`lora_lab.results.report`).
- ``lora-lab export RUN_DIR --format peft OUT_DIR`` -- a run's adapter in HF PEFT format
  (`lora_lab.adapters.peft_export`).
- ``lora-lab merge-adapters OUT_DIR ADAPTER_DIR[=WEIGHT] ...`` -- task arithmetic of saved adapters
  into their base model, written with ``save_pretrained`` (`lora_lab.adapters.compose`).
- ``lora-lab analyze RUN... --out DIR [--measure M]`` -- the LoRA/DoRA/AdaLoRA papers' analyses of runs
  (`lora_lab.analysis.command`).
- ``lora-lab env`` -- versions, torch build, CUDA, git SHA (`lora_lab.run.env_info`); ``lora-lab --version``.

Every command that writes a path the user names (export, merge-adapters, report ``--out``) checks it
first with `lora_lab.output_target`: never inside a run or sweep dir, never a non-empty directory
without ``--overwrite``. ``train --multirun`` exits 1 when a grid trial did not succeed and 130 on
Ctrl-C (`lora_lab.sweeps.multirun.multirun_outcome`).

Subcommands register themselves in `COMMANDS` (name -> (help, function taking argv)).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable

from lora_lab.command_line import CommandParser, no_arguments
from lora_lab.output_target import prepare_output_dir


def _train(argv: list[str]) -> int:
    from contextlib import nullcontext

    from lora_lab.run.gate import check_command_line, settable_argv
    from lora_lab.sweeps.multirun import check_multirun, multirun_outcome, multirun_study

    argv = settable_argv(argv)  # every schema key settable as group.key=value, no `+`
    if check_command_line(argv, check_sweep=check_multirun):  # a bad command line ends here, before the trial code and the model load
        from lora_lab.run.hydra_task import main as hydra_task
        from lora_lab.run.launch_ranks import as_train_module
        from lora_lab.sweeps.interrupt import SweepInterrupt

        sweep = multirun_study(argv) is not None
        with SweepInterrupt() if sweep else nullcontext() as stop, as_train_module(argv):  # DDP ranks >= 1 re-run this as `python -m lora_lab.train ARGV`
            hydra_task()
        return multirun_outcome(argv, stop.started if sweep and stop.hit else None)
    return 0


def _sweep(argv: list[str]) -> int:
    from lora_lab.sweeps.launch import sweep

    return sweep(argv)


def _report(argv: list[str]) -> int:
    from lora_lab.results.report import main

    return main(argv)


def _export(argv: list[str]) -> int:
    import json
    from pathlib import Path

    from lora_lab.adapters.peft_export import EXPORT_FORMATS, PROVENANCE_NAME, export_run

    ap = CommandParser(prog="lora-lab export", description="export a run's adapter (RUN_DIR/adapter)")
    ap.add_argument("run_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--format", dest="fmt", default="peft", help=f"one of: {', '.join(EXPORT_FORMATS)}")
    ap.add_argument("--overwrite", action="store_true", help="write into OUT_DIR although it is not empty (never into a run dir)")
    args = ap.parse_args(argv)
    prepare_output_dir(args.out_dir, args.overwrite, "export.out_dir", inputs=(args.run_dir,))
    out = export_run(args.run_dir, args.fmt, args.out_dir)
    print(f"{out}  ({exported_state_line(args.run_dir)})")
    note = json.loads((Path(out) / PROVENANCE_NAME).read_text()).get("not_expressed_by_peft")
    if note:
        print(f"note: {note}")
    return 0


def exported_state_line(run_dir: str) -> str:
    """Which adapter state ``RUN_DIR/adapter`` holds, as its result.json records it."""
    from lora_lab.results.record import read_record

    try:
        record = read_record(run_dir)
    except (OSError, ValueError):
        record = None
    state = record.exported_state if record is not None else None
    if state == "best_val":
        step = (record.metrics.get("best_val") or {}).get("step")
        return f"adapter state: best validation, step {step}: the state the reported test metrics were measured at; the final state is in adapter_last/"
    if state == "final":
        return "adapter state: final (no evaluation selected an earlier one)"
    return "adapter state: not recorded (a run written before result.json named it)"


def _merge_adapters(argv: list[str]) -> int:
    import json

    from lora_lab.adapters.compose import HEAD_AUTO, HEAD_NONE, check_adapter_dirs, merge_adapters, plan_heads
    from lora_lab.models.backbones import load_recorded_base
    from lora_lab.errors import ConfigError

    ap = CommandParser(prog="lora-lab merge-adapters", description="W + sum_i w_i dW_i of saved adapters, saved as a model")
    ap.add_argument("out_dir")
    ap.add_argument("adapters", nargs="+", metavar="ADAPTER_DIR[=WEIGHT]", help="weight defaults to 1")
    ap.add_argument(
        "--head-from", default=HEAD_AUTO, metavar="INDEX|none",
        help="whose trained heads to keep: an adapter index, or 'none' for the base model's own (untrained) heads; "
        "default: the only adapter's, or the several adapters' when identical (else this flag is required)",
    )
    ap.add_argument("--overwrite", action="store_true", help="write into OUT_DIR although it is not empty (never into a run dir)")
    args = ap.parse_args(argv)
    inputs = tuple(item.partition("=")[0] for item in args.adapters)
    out = prepare_output_dir(args.out_dir, args.overwrite, "merge-adapters.out_dir", inputs=inputs)
    head_from = args.head_from
    if head_from not in (HEAD_AUTO, HEAD_NONE):
        if not head_from.isdigit():
            raise ConfigError("compose.head_from", f"{head_from!r}; allowed: an adapter index (0, 1, ...) or {HEAD_NONE!r}")
        head_from = int(head_from)
    specs = []
    for item in args.adapters:
        path, _, weight = item.partition("=")
        try:
            specs.append((path, float(weight) if weight else 1.0))
        except ValueError:
            raise ConfigError("compose.weights", f"{item!r}: the weight after '=' must be a number") from None
    check_adapter_dirs([path for path, _ in specs])  # every input, then the heads, before the base loads
    plan_heads([path for path, _ in specs], head_from)
    model = load_recorded_base(specs[0][0])
    report = merge_adapters(model, specs, head_from=head_from)
    model.save_pretrained(out)
    (out / "lora_lab_merge.json").write_text(json.dumps(report.to_dict(), indent=2))
    print(report.heads.describe())
    print(out)
    return 0


def _analyze(argv: list[str]) -> int:
    from lora_lab.analysis.command import main

    return main(argv)


def _env(argv: list[str]) -> int:
    from lora_lab.run.env_info import env_text

    no_arguments("env", argv)
    print(env_text())
    return 0


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "train": ("train one run (or a --multirun sweep) with Hydra overrides", _train),
    "sweep": ("run a study from sweeps/ (or conf/experiment/); dry_run=true lists its trials", _sweep),
    "report": ("aggregate result.json files into paper tables and plots", _report),
    "export": ("export RUN_DIR's adapter: lora-lab export RUN_DIR --format peft OUT_DIR", _export),
    "merge-adapters": ("merge weighted saved adapters into their base: OUT_DIR DIR[=W] ...", _merge_adapters),
    "analyze": ("paper analyses of runs (subspace, dW vs W, spectrum, DoRA decomposition, AdaLoRA budget, curves): RUN... --out DIR", _analyze),
    "env": ("versions, torch build, CUDA and git SHA: paste it into a bug report", _env),
}


def usage() -> str:
    lines = ["usage: lora-lab COMMAND [args]    (lora-lab --version)", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (help_, _) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its output piped into a reader that stops early (``lora-lab report ... | head``)
    ends it quietly with the shell's status for that, 128 + SIGPIPE, instead of a traceback."""
    try:
        status = run_command(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # inside the try: a reader that has gone shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit-time flush must not fail again
        return 128 + signal.SIGPIPE


def run_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from lora_lab.run.env_info import version_line

        print(version_line())
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

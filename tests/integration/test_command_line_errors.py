"""A bad command line of any subcommand that takes options is one `error:` line, exit 2, naming the
command, what was wrong and what is allowed (argparse printed a usage block and no allowed list; a
flag Hydra does not know printed Hydra's usage and ``train.py: error: ...``)."""

import pytest

from lora_lab.cli import main as lora_lab

ERRORS = [
    (["report", "runs", "--bogus"], "error: lora-lab report: unrecognized arguments: --bogus; allowed: --help, --by, --nuisance, --format, --out,"),
    (["analyze", "runs", "--out", "x", "--rnak", "4"], "error: lora-lab analyze: unrecognized arguments: --rnak 4; allowed: --help, --out, --measure, --max-dim, --rank,"),
    (["analyze", "runs", "--out", "x", "--max-dim", "abc"], "error: lora-lab analyze: argument --max-dim: invalid int value: 'abc'; usage: lora-lab analyze"),
    (["export", "run"], "error: lora-lab export: the following arguments are required: out_dir; usage: lora-lab export [-h] [--format FMT]"),
    (["merge-adapters"], "error: lora-lab merge-adapters: the following arguments are required: out_dir, ADAPTER_DIR[=WEIGHT]; usage:"),
    (["train", "--bogus", "adapter=lora"], "error: lora-lab train: unrecognized argument '--bogus'; allowed: overrides key=value and Hydra's flags --help,"),
    (["train", "--multirnu", "seed=0,1"], "error: lora-lab train: unrecognized argument '--multirnu' (did you mean `--multirun`?); allowed:"),
    (["env", "--bogus"], "error: lora-lab env: unexpected argument '--bogus'; allowed: none (lora-lab env takes no arguments)"),
]


@pytest.mark.parametrize("argv, line", ERRORS, ids=[" ".join(a[:2]) for a, _ in ERRORS])
def test_a_bad_command_line_is_one_line_naming_what_is_allowed(argv, line, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        lora_lab(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    err = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(line), err
    assert captured.out == "" and list(tmp_path.iterdir()) == []  # nothing written


def test_help_is_still_argparse_help(capsys):
    with pytest.raises(SystemExit) as stop:
        lora_lab(["report", "--help"])
    assert stop.value.code == 0 and "usage: lora-lab report" in capsys.readouterr().out

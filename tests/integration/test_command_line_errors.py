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
    (["sweep"], "error: NAME: missing; allowed: adalora_budget, alpha, analysis_minilm,"),
    (["env", "--bogus"], "error: lora-lab env: unexpected argument '--bogus'; allowed: none (lora-lab env takes no arguments)"),
]


@pytest.mark.parametrize("argv, line", ERRORS, ids=[" ".join(a[:2]) for a, _ in ERRORS])
def test_a_bad_command_line_is_one_line_naming_what_is_allowed(argv, line, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        status = lora_lab(argv)
    except SystemExit as stop:
        status = stop.code
    assert status == 2
    captured = capsys.readouterr()
    err = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(line), err
    assert captured.out == "" and list(tmp_path.iterdir()) == []  # nothing written


def test_help_is_still_argparse_help(capsys):
    with pytest.raises(SystemExit) as stop:
        lora_lab(["report", "--help"])
    assert stop.value.code == 0 and "usage: lora-lab report" in capsys.readouterr().out


def _runs(root):
    from tests.results.fake_results import make_record, write_record

    for seed in range(2):
        for dropout in (0.0, 0.1):
            write_record(root, make_record(seed=seed, val=0.7 + dropout, test=0.7, adapter_extra={"dropout": dropout}))
    return root / "fab"


def test_report_refuses_a_file_that_is_no_record_and_a_nuisance_no_run_has(tmp_path, capsys):
    runs = _runs(tmp_path / "runs")
    log = next(runs.rglob("result.json")).with_name("train.log")
    log.write_text("epoch 0\n")
    for argv, line in (([str(log)], f"error: PATH: {log} is neither a result.json nor a sweep_plan.json; allowed: run directories,"),
                       ([str(runs), "--nuisance", "dropuot"], "error: --nuisance: unknown key 'dropuot'; allowed: "),
                       ([str(runs), "--nuisance", "optim.lr,lr_scale,dropuot"], "error: --nuisance: unknown key 'dropuot'; allowed: ")):
        assert lora_lab(["report", *argv, "--out", str(tmp_path / "out"), "--no-plots"]) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and err[0].startswith(line), err
        assert not (tmp_path / "out").exists()
    # a nuisance key is found as --by finds one: dropout is cfg.adapter.dropout, the best of the two settings is taken
    assert lora_lab(["report", str(runs), "--out", str(tmp_path / "out"), "--no-plots", "--nuisance", "optim.lr,dropout"]) == 0
    md = (tmp_path / "out" / "table.md").read_text()
    assert "| LoRA | 8.2K | 0.0005 | 70.00 (n=2) |" in md and "Best over optim.lr, dropout per cell (up to 2 settings)" in md


def test_analyze_refuses_a_non_positive_dimension(tmp_path, capsys):
    runs = _runs(tmp_path / "runs")
    assert lora_lab(["analyze", str(runs), "--out", str(tmp_path / "out"), "--max-dim", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --max-dim: must be a positive integer, got 0"
    assert not (tmp_path / "out").exists()


def test_embed_names_a_missing_document_in_one_line(tmp_path, capsys):
    from lora_lab.results.embed import main as embed

    assert embed([str(tmp_path / "nope.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'nope.md'}: [Errno 2] No such file")


def test_the_flag_check_reads_hydras_parser_and_stands_aside_without_it(monkeypatch):
    from lora_lab.errors import ConfigError
    from lora_lab.run import gate

    flags = gate.hydra_flags()
    assert {"--multirun", "-m", "--cfg", "--config-dir", "--info"} <= set(flags)
    gate.check_flags(["--multirun", "--config-dir=/tmp", "-cn", "train", "adapter.r=-1"])  # known flags, a negative value: no error
    with pytest.raises(ConfigError, match="unrecognized argument '--bogus'"):
        gate.check_flags(["--bogus"])
    monkeypatch.setattr(gate, "hydra_flags", lambda: None)  # a Hydra that keeps its parser elsewhere: its own check answers
    gate.check_flags(["--bogus"])

"""The training entry point as users run it: bad input fails with one line, local GLUE trains
offline, results are written, and a finished trial is not rerun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lora_lab.adapters import METHODS
from tests.resume.exact import train_cli

ROOT = Path(__file__).resolve().parents[2]
#: the adapter options Hydra offers: one per file in conf/adapter/ (a method's config; pissa is LoRA's)
ADAPTER_OPTIONS = ", ".join(sorted(p.stem for p in (ROOT / "conf" / "adapter").glob("*.yaml")))
TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "trainer.max_epochs=1"]


def run_train(tmp_path, *overrides, cli=False):
    env = {**os.environ, "LORA_LAB_RUNS": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lora_lab.cli", "train"] if cli else [sys.executable, "-m", "lora_lab.train"]
    return subprocess.run([*cmd, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def write_rte(root: Path, n: int = 24, missing_column: bool = False):
    (root / "RTE").mkdir(parents=True)
    header = "index\tsentence1\tlabel\n" if missing_column else "index\tsentence1\tsentence2\tlabel\n"
    for split in ("train", "dev"):
        rows = [f"{i}\t\"Quoted premise {i}.\tHypothesis {i % 3}.\t{'entailment' if i % 2 else 'not_entailment'}" for i in range(n)]
        if missing_column:
            rows = [f"{i}\tpremise\tentailment" for i in range(n)]
        (root / "RTE" / f"{split}.tsv").write_text(header + "\n".join(rows) + "\n")


#: (overrides, a fragment of the one error line): every case runs in-process through `cli_main` (as
#: ``lora-lab train`` does, a compose each); the first also runs in its own ``python -m lora_lab.train``
BAD_INPUT = [
    (["adapter.method=nope"], f"error: adapter.method: unknown method 'nope'; allowed: {', '.join(sorted(METHODS))}"),
    (["task=nope"], "error: task: unknown option 'nope'; allowed: glue_cola, "),
    (["adapter=nope"], f"error: adapter: unknown option 'nope'; allowed: {ADAPTER_OPTIONS}"),
    (["adapter.r=0"], "error: adapter.r: must be a positive integer, got 0"),
    (["adapter.alpha=-1"], "error: adapter.alpha: must be a positive number, got -1"),
    (["adapter.targets=[nothing_like_this]"], "error: adapter.targets: ['nothing_like_this'] matches no adaptable module"),
    (["task=glue_rte", "task.data_dir=/nonexistent/glue"], "error: task.data_dir: /nonexistent/glue is not a directory"),
    (["task=text_classification"], "error: task.data_files.train: is required: set task.data_files.train/val"),
    (["task=text_generation", "task.data_files.train=/nonexistent/t.jsonl", "task.data_files.val=v.jsonl"],
     "error: task.data_files.train: /nonexistent/t.jsonl does not exist"),
]


def assert_one_error_line(code: int, stderr: str, expected: str) -> None:
    """Exit status 2, EXPECTED in the one ``error: `` line, no traceback."""
    assert code == 2, stderr[-2000:]
    assert expected in stderr, stderr[-2000:]
    assert "Traceback" not in stderr
    assert len([ln for ln in stderr.splitlines() if ln.startswith("error: ")]) == 1


def refused_in_own_process(tmp_path, argv: list[str], expected: str, cli: bool = False) -> str:
    """``python -m lora_lab.train ARGV`` (``lora-lab train`` with CLI) in its own process, runs root under
    TMP_PATH: one error line with EXPECTED, and no run directory; returns stderr."""
    proc = run_train(tmp_path, *argv, cli=cli)
    assert_one_error_line(proc.returncode, proc.stderr, expected)
    assert not (tmp_path / "runs").exists()  # an input error claims no run directory
    return proc.stderr


def refused_in_process(tmp_path, capsys, argv: list[str], expected: str) -> str:
    """The same through `cli_main` in this process (what both entry points call); returns stderr."""
    code = train_cli([*argv, f"paths.runs_root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert_one_error_line(code, err, expected)
    assert not (tmp_path / "runs").exists()
    return err


def test_python_m_lora_lab_train_refuses_bad_input_in_one_line(tmp_path):
    overrides, expected = BAD_INPUT[0]
    refused_in_own_process(tmp_path, [*TINY, *overrides], expected)


@pytest.mark.parametrize("overrides,expected", BAD_INPUT)
def test_bad_input_one_clear_line(tmp_path, capsys, overrides, expected):
    refused_in_process(tmp_path, capsys, [*TINY, *overrides], expected)


def test_group_option_check_reads_multirun_lists_and_skips_dotted_keys(tmp_path):
    from lora_lab.config.compose import unknown_group_choice

    assert unknown_group_choice(["adapter=lora,dora", "task.max_length=8", "debug=null", "hydra/launcher=parallel", "seed=1"]) is None
    err = unknown_group_choice(["adapter=lora,dorra"])
    assert err.key == "adapter" and "'dorra'" in str(err) and f"allowed: {ADAPTER_OPTIONS}" in str(err)


def test_missing_tsv_column_one_line(tmp_path, capsys):
    write_rte(tmp_path / "glue", missing_column=True)
    err = refused_in_process(tmp_path, capsys, [*TINY, "task=glue_rte", f"task.data_dir={tmp_path / 'glue'}"], "error: task.data_dir: ")
    assert "lacks column(s) ['sentence2']" in err


def test_local_glue_trains_offline_and_rerun_is_noop(tmp_path):
    write_rte(tmp_path / "glue")
    args = ["debug=tiny", "trainer.max_epochs=1", "task=glue_rte", f"task.data_dir={tmp_path / 'glue'}", "task.batch_size=8"]
    proc = run_train(tmp_path, *args, cli=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result_path = tmp_path / "runs/default/glue_rte/tiny_bert/lora-r8-a16-kaiming-qv/lr0.0005-seed0/result.json"
    record = json.loads(result_path.read_text())
    assert record["status"] == "success" and record["schema_version"] == 2 and record["exported_state"] == "best_val"
    assert record["config"]["task"]["data_dir"] == str(tmp_path / "glue")
    assert record["optimizer_steps"] == 3 and len(record["curve"]) == 1
    assert set(record["metrics"]["best_val"]) >= {"val/accuracy", "step"}
    assert record["params"]["trainable_params"] == record["params"]["adapter_params"] + record["params"]["head_params"]
    assert record["git"]["sha"] and record["versions"]["torch"]
    mtime = result_path.stat().st_mtime_ns
    again = run_train(tmp_path, *args)
    assert again.returncode == 0 and result_path.stat().st_mtime_ns == mtime


def test_in_process_argv_reaches_hydra_in_the_settable_form(tmp_path, capsys):
    """`cli_main(argv)` hands Hydra (which reads sys.argv) the argv it checked, with every schema key
    settable without `+`: a key the backbone YAML lacks (``backbone.dtype``) is in the composed job."""
    code = train_cli(["--cfg", "job", *TINY, "backbone.dtype=bfloat16", f"paths.runs_root={tmp_path / 'runs'}"])
    out = capsys.readouterr().out
    assert code == 0 and "  dtype: bfloat16\n" in out
    assert not (tmp_path / "runs").exists()

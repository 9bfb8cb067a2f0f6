"""Issue 24, classes 1, 2, 4, 6 and 8: a battery of hostile cases beyond the issue's examples.

Each case is a real command (in-process, ``lora-lab ARGV``) next to one finished tiny run; it must end
with the expected exit status and, for a refusal, exactly one ``error:`` line naming the key and no
traceback, and leave every file of the finished run byte-identical (md5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import lora_lab, md5s
from tests.resume.exact import train_cli

TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=1",
        "test_after_fit=false"]




@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("battery24")
    assert train_cli([*TINY, f"paths.runs_root={tmp / 'runs'}"]) == 0
    run = next((tmp / "runs").rglob("result.json")).parent
    sweep = tmp / "runs" / "swept"
    sweep.mkdir()
    (sweep / "sweep_plan.json").write_text(json.dumps({"study": "swept", "trials": []}))
    (tmp / "link_to_adapter").symlink_to(run / "adapter")
    (tmp / "link_to_runs").symlink_to(tmp / "runs")
    (tmp / "data").mkdir()
    (tmp / "corrupt_adapter").mkdir()
    (tmp / "corrupt_adapter" / "adapter_config.json").write_text('{"format": "lora_lab.adapter", ')
    (tmp / "corrupt_adapter" / "adapter_model.safetensors").write_bytes(b"")
    (tmp / "corrupt_run" / "adapter").mkdir(parents=True)  # a run dir whose adapter config was cut short
    (tmp / "corrupt_run" / "adapter" / "adapter_config.json").write_text('{"format": "lora_lab.adapter", ')
    (tmp / "bad_weights_run" / "adapter").mkdir(parents=True)  # a valid config, weights that are not safetensors
    (tmp / "bad_weights_run" / "adapter" / "adapter_config.json").write_bytes((run / "adapter" / "adapter_config.json").read_bytes())
    (tmp / "bad_weights_run" / "adapter" / "adapter_model.safetensors").write_bytes(b"not safetensors")
    (tmp / "corrupt_record").mkdir()
    (tmp / "corrupt_record" / "result.json").write_text('{"status": "success"')
    return tmp, run


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def user_task(tmp: Path, train: Path, fmt_val: str = "text,label\na,pos\nb,neg\n") -> list[str]:
    val = write(tmp / "data" / "val.csv", fmt_val)
    return ["train", "task=text_classification", *TINY, f"task.data_files.train={train}", f"task.data_files.val={val}",
            "task.labels=[neg,pos]", f"paths.runs_root={tmp / 'runs'}"]


def cases(tmp: Path, run: Path) -> list[tuple[str, list[str], int, str]]:
    """(name, argv, exit status, the key the error line names; "" for a command that must succeed)."""
    data = tmp / "data"
    return [
        # class 1: outputs
        ("export into adapter_last", ["export", str(run), str(run / "adapter_last")], 2, "export.out_dir"),
        ("export into logs", ["export", str(run), str(run / "logs")], 2, "export.out_dir"),
        ("export into checkpoints/new", ["export", str(run), str(run / "checkpoints" / "new")], 2, "export.out_dir"),
        ("export into .hydra", ["export", str(run), str(run / ".hydra"), "--overwrite"], 2, "export.out_dir"),
        ("export into the run's parent (holds the run)", ["export", str(run), str(run.parent)], 2, "export.out_dir"),
        ("export into a sweep dir", ["export", str(run), str(tmp / "runs" / "swept")], 2, "export.out_dir"),
        ("export into a symlink to the adapter", ["export", str(run), str(tmp / "link_to_adapter"), "--overwrite"], 2, "export.out_dir"),
        ("export below a symlink to the runs", ["export", str(run), str(tmp / "link_to_runs" / run.relative_to(tmp / "runs") / "x")], 2, "export.out_dir"),
        ("export to an empty path", ["export", str(run), ""], 2, "export.out_dir"),
        ("export of a dir without an adapter", ["export", str(tmp / "data"), str(tmp / "never")], 2, "export.run_dir"),
        ("merge into the run", ["merge-adapters", str(run), str(run / "adapter")], 2, "merge-adapters.out_dir"),
        ("merge into a file", ["merge-adapters", str(run / "result.json"), str(run / "adapter")], 2, "merge-adapters.out_dir"),
        ("merge of a path that does not exist", ["merge-adapters", str(tmp / "never"), str(tmp / "no_such_adapter")], 2, "compose.adapters"),
        ("merge of a run dir, not its adapter", ["merge-adapters", str(tmp / "never"), str(run)], 2, "compose.adapters"),
        ("merge of a second input that is no adapter", ["merge-adapters", str(tmp / "never"), str(run / "adapter"), str(data)], 2, "compose.adapters"),
        ("merge of an adapter dir with a corrupt config", ["merge-adapters", str(tmp / "never"), str(tmp / "corrupt_adapter")], 2, "compose.adapters"),
        ("merge of an adapter with corrupt weights", ["merge-adapters", str(tmp / "never"), str(tmp / "bad_weights_run" / "adapter")], 2, "compose.adapters"),
        ("export of a run whose adapter config is corrupt", ["export", str(tmp / "corrupt_run"), str(tmp / "never")], 2, "export.run_dir"),
        ("export of a run whose adapter weights are corrupt", ["export", str(tmp / "bad_weights_run"), str(tmp / "never")], 2, "export.run_dir"),
        ("analyze a run whose result.json is corrupt", ["analyze", str(tmp / "corrupt_record"), "--out", str(tmp / "never")], 2, "RUN"),
        ("report into the adapter", ["report", str(run), "--out", str(run / "adapter"), "--overwrite"], 2, "--out"),
        ("report into a sweep dir", ["report", str(run), "--out", str(tmp / "runs" / "swept")], 2, "--out"),
        ("report under /dev/null", ["report", str(run), "--out", "/dev/null/report"], 2, "--out"),
        # class 2: ambiguous user data
        ("csv with a BOM and a repeated label", user_task(tmp, write(data / "bom.csv", "\ufefftext,label,label\na,pos,neg\n")), 2, "task.data_files.train"),
        ("tsv, repeated after stripping", user_task(tmp, write(data / "t.tsv", "text\tlabel\t label \na\tpos\tneg\n")), 2, "task.data_files.train"),
        ("jsonl, repeated text key", user_task(tmp, write(data / "t.jsonl", '{"text": "a", "text": "b", "label": "pos"}\n')), 2, "task.data_files.train"),
        ("json, repeated key in record 2", user_task(tmp, write(data / "t.json", '[{"text": "a", "label": "pos"},\n{"text": "b", "label": "pos", "label": "neg"}]\n')), 2, "task.data_files.train"),
        ("val csv with a repeated column", user_task(tmp, write(data / "ok.csv", "text,label\na,pos\nb,neg\n"), "text,text,label\na,b,pos\n"), 2, "task.data_files.val"),
        # class 4: path components
        ("study with a trailing space", ["train", *TINY, f"paths.runs_root={tmp / 'runs'}", "study='x '"], 2, "study"),
        ("study '.'", ["train", *TINY, f"paths.runs_root={tmp / 'runs'}", "study=."], 2, "study"),
        ("hidden task name", ["train", *TINY, f"paths.runs_root={tmp / 'runs'}", "task.name=.x"], 2, "task.name"),
        ("run_suffix with a slash inside", ["train", *TINY, f"paths.runs_root={tmp / 'runs'}", "run_suffix=-a/b"], 2, "run_suffix"),
        ("backbone short name with ..", ["train", *TINY, f"paths.runs_root={tmp / 'runs'}", "backbone.short_name=a/../../b"], 2, "backbone.short_name"),
        ("the same run, root spelled with //", ["train", *TINY, f"paths.runs_root={tmp}//runs/"], 0, ""),
        # class 6: sweeps
        ("multirun, second suffix bad", ["train", "--multirun", *TINY, f"paths.runs_root={tmp / 'runs'}", "run_suffix=-a,/b"], 2, "run_suffix"),
        ("multirun over the finished run, other config", ["train", "--multirun", *TINY, f"paths.runs_root={tmp / 'runs'}", "seed=0,1", "optim.eps=1e-6"], 2, "run_name"),
        ("optuna n_jobs 0", ["train", "--multirun", *TINY, f"paths.runs_root={tmp / 'runs'}", "hydra/sweeper=optuna", "adapter.r=2,4", "hydra.sweeper.n_jobs=0"], 2, "hydra.sweeper.n_jobs"),
        ("optuna storage is a directory", ["train", "--multirun", *TINY, f"paths.runs_root={tmp / 'runs'}", "hydra/sweeper=optuna", "adapter.r=2,4", f"hydra.sweeper.storage=sqlite:///{data}"], 2, "hydra.sweeper.storage"),
        ("optuna searches a key the run name lacks", ["train", "--multirun", *TINY, f"paths.runs_root={tmp / 'runs'}", "hydra/sweeper=optuna", "adapter.r=2,4", "optim.eps=interval(1e-8, 1e-6)"], 2, "hydra.sweeper.params.optim.eps"),
    ]


def test_battery(world, capsys):
    tmp, run = world
    before = md5s(tmp / "runs")
    failures = []
    all_cases = cases(tmp, run)
    for name, argv, code, key in all_cases:
        capsys.readouterr()
        got = lora_lab(argv)
        err = capsys.readouterr().err
        errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        ok = got == code and "Traceback" not in err
        if code == 2:
            ok = ok and len(errors) == 1 and errors[0].startswith(f"error: {key}")
        if not ok:
            failures.append(f"{name}: exit {got}, {err.strip()[-400:]!r}")
        if md5s(tmp / "runs") != before:
            failures.append(f"{name}: changed the finished run")
            before = md5s(tmp / "runs")
    assert not failures, "\n".join(failures)
    assert not (tmp / "never").exists() and not list(tmp.rglob("multirun.yaml"))
    assert len(all_cases) == 39

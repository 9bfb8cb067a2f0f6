"""Issue 24, classes 5 and 7: everything checkable before the model loads is refused there, as one
``error: <key>: ...`` line and exit status 2, with no run dir written and every byte of a finished run
in the same runs root unchanged. The issue's examples first, then a battery of further hostile cases.
In-process through `cli_main`, the way ``lora-lab train`` runs."""

from __future__ import annotations

import hashlib
import inspect
import socket
import time
from pathlib import Path

import pytest

from lora_lab.config.trainer_checks import TRAINER_KEYS
from tests.resume.exact import train_cli
from tests.tasks.test_registry import byo_overrides

TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=1",
        "test_after_fit=false"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    runs = tmp_path_factory.mktemp("late") / "runs"
    assert train_cli([*TINY, f"paths.runs_root={runs}"]) == 0
    return runs


def refused(runs: Path, capsys, overrides: list[str], key: str) -> str:
    """Run ``lora-lab train TINY OVERRIDES`` against ``runs``; assert exit 2, one ``error: KEY:`` line, no
    traceback, no new file or directory and no finished byte changed; returns the line."""
    before, dirs = hashes(runs), sorted(p for p in runs.rglob("*") if p.is_dir())
    assert train_cli([*TINY, f"paths.runs_root={runs}", *overrides]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}: "), err
    assert hashes(runs) == before and sorted(p for p in runs.rglob("*") if p.is_dir()) == dirs
    return lines[0]


ISSUE_EXAMPLES = [  # (overrides, the key the line names, a fragment of the line)
    (["task=wikisql_synthetic"], "backbone", "encoder-only"),                               # generation on an encoder
    (["adapter=pissa", "adapter.r=64"], "adapter.r", "exceeds min(in, out) = 32"),           # tiny_bert: hidden 32
    (["trainer.val_check_interval=1.5"], "trainer.val_check_interval", "(0, 1]"),
    (["+trainer.not_a_key=1"], "trainer.not_a_key", "unknown trainer key"),
    (["seed=4294967296"], "seed", "[0, 4294967295]"),
    (["logger=wandb", "logger.wandb.mode=bogus"], "logger.wandb.mode", "allowed: online, offline"),
    (["logger=mlflow", "logger.mlflow.tracking_uri=foo://somewhere"], "logger.mlflow.tracking_uri", "unknown URI scheme 'foo'"),
]


@pytest.mark.parametrize("overrides, key, fragment", ISSUE_EXAMPLES, ids=[o[0] for o, _, _ in ISSUE_EXAMPLES])
def test_issue_examples_are_one_line_before_anything_is_written(finished, capsys, overrides, key, fragment):
    assert fragment in refused(finished, capsys, overrides, key)


def test_an_accelerator_this_machine_lacks(finished, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "no visible CUDA GPU" in refused(finished, capsys, ["trainer.accelerator=cuda"], "trainer.accelerator")


def test_an_empty_metric_list(finished, capsys, tmp_path):
    overrides = [*byo_overrides("text_classification", tmp_path), "task=text_classification", "task.metrics=[]"]
    assert "non-empty list" in refused(finished, capsys, overrides, "task.metrics")


def test_an_unreachable_tracking_server_is_refused_in_seconds(finished, capsys):
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    line = refused(finished, capsys, ["logger=mlflow", f"logger.mlflow.tracking_uri={uri}", "seed=7"],  # a new trial: probed
                   "logger.mlflow.tracking_uri")
    assert "is not reachable" in line and time.monotonic() - started < 30  # not MLflow's minutes of retries


def test_a_rerun_of_a_finished_run_needs_no_tracking_server(finished, capsys):
    """Trackers are run control, not identity: the finished run is finished whatever tracker is named."""
    before = hashes(finished)
    assert train_cli([*TINY, f"paths.runs_root={finished}", "logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{closed_port()}"]) == 0
    assert "already finished: " in capsys.readouterr().err and hashes(finished) == before


BATTERY = [  # further hostile cases of the same classes
    (["+trainer.overfit_batches=2"], "trainer.overfit_batches"),
    (["+trainer.limit_val_batches=-1"], "trainer.limit_val_batches"),
    (["+trainer.limit_train_batches=1.5"], "trainer.limit_train_batches"),
    (["+trainer.limit_test_batches=0", "test_after_fit=true"], "trainer.limit_test_batches"),
    (["+trainer.fast_dev_run=3"], "trainer.fast_dev_run"),
    (["trainer.val_check_interval=0"], "trainer.val_check_interval"),
    (["trainer.val_check_interval=-2"], "trainer.val_check_interval"),
    (["trainer.val_check_interval=abc"], "trainer.val_check_interval"),
    (["trainer.accelerator=tpu"], "trainer.accelerator"),
    (["+trainer.default_root_dir=/tmp/elsewhere"], "trainer.default_root_dir"),
    (["+trainer.max_epoch=3"], "trainer.max_epoch"),
    (["seed=-1"], "seed"),
    (["seed=1.5"], "seed"),
    (["seed=99999999999999999999"], "seed"),
    (["adapter=pissa", "adapter.r=33"], "adapter.r"),
    (["adapter=pissa", "adapter.r=40", "adapter.targets=[query,value]"], "adapter.r"),
    (["task=wikisql_synthetic", "backbone=minilm"], "backbone"),
    (["logger=mlflow", "+logger.mlflow.bogus_key=1"], "logger.mlflow.bogus_key"),
    (["logger=mlflow", "logger.mlflow.log_adapter=maybe"], "logger.mlflow.log_adapter"),
    (["logger=mlflow", "logger.mlflow.tracking_uri=http://:5000"], "logger.mlflow.tracking_uri"),
    (["logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:99999"], "logger.mlflow.tracking_uri"),
    (["logger=mlflow", "logger.mlflow.tracking_uri=''"], "logger.mlflow.tracking_uri"),
    (["logger=tensorboard", "logger.tensorboard.dir=../../escape"], "logger.tensorboard.dir"),
    (["logger=tensorboard", "logger.tensorboard.dir=/abs/path"], "logger.tensorboard.dir"),
    (["logger=wandb", "logger.wandb.mode=ONLINE"], "logger.wandb.mode"),
    # found by hand while building this battery: Lightning's and transformers' own checks, once late
    (["trainer.devices=0", "seed=7"], "trainer"),  # Lightning's checks run for a trial about to run: a new seed
    (["+trainer.max_time=abc", "seed=7"], "trainer"),
    (["+trainer.profiler=bogus", "seed=7"], "trainer"),
    (["backbone.random_init.model_type=bogus"], "backbone.random_init"),
    (["backbone.random_init.hidden_size=-1"], "backbone.random_init"),
    (["backbone.random_init.num_attention_heads=3"], "backbone.random_init"),
    (["trainer.num_sanity_val_steps=-5"], "trainer.num_sanity_val_steps"),
    (["+trainer.min_steps=-3"], "trainer.min_steps"),
    (["trainer.deterministic=maybe"], "trainer.deterministic"),
    (["+trainer.detect_anomaly=maybe"], "trainer.detect_anomaly"),
]


@pytest.mark.parametrize("overrides, key", BATTERY, ids=[" ".join(o) for o, _ in BATTERY])
def test_battery(finished, capsys, overrides, key):
    refused(finished, capsys, overrides, key)


@pytest.mark.parametrize("var, value, key", [
    ("MLFLOW_TRACKING_URI", "ftp://host/x", "MLFLOW_TRACKING_URI"),
    ("WANDB_MODE", "sometimes", "WANDB_MODE"),
])
def test_bad_tracker_settings_from_the_environment(finished, capsys, monkeypatch, var, value, key):
    monkeypatch.setenv(var, value)
    tracker = "mlflow" if var.startswith("MLFLOW") else "wandb"
    refused(finished, capsys, [f"logger={tracker}", "seed=7"], key)


def test_the_rank_bound_accepts_the_largest_rank_that_fits(tmp_path):
    from hydra import compose, initialize_config_dir

    from lora_lab.config.trial_config import parse

    from lora_lab.config.compose import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["debug=tiny", "adapter=pissa", "adapter.r=32"])
    assert parse(cfg).adapter.r == 32  # min(in, out) = 32 on every tiny_bert target: allowed


def test_trainer_keys_are_lightnings():
    import lightning

    assert set(TRAINER_KEYS) == set(inspect.signature(lightning.pytorch.Trainer.__init__).parameters) - {"self"}


def test_a_failing_run_is_one_line_unless_hydra_full_error(tmp_path, capsys, monkeypatch):
    boom = ["+callbacks.boom._target_=tests.resume.signal_at.RaiseIfLr", "+callbacks.boom.lr=0.0005"]
    assert train_cli([*TINY, f"paths.runs_root={tmp_path / 'a'}", *boom]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == [ln for ln in err.splitlines() if ln.strip()]
    assert err.startswith("error: RuntimeError: injected failure for lr=0.0005 (recorded in ")
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(RuntimeError, match="injected failure"):
        train_cli([*TINY, f"paths.runs_root={tmp_path / 'b'}", *boom])

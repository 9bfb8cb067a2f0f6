"""Fast checks of what runs and sweeps print and of the tracker options: progress mode by stream
(a real pseudo-terminal vs a pipe), the summary block and sweep trial lines built from result files
the test writes, logger composition (one tracker, a list, `many`) and the one-line errors."""

import io
import json
import os
import sys
import time

import pytest
from hydra import compose, initialize_config_dir

from lora_lab.config.trial_config import progress_options
from lora_lab.run.console import summary_text
from lora_lab.run.progress import ProgressPrinter
from lora_lab.errors import ConfigError
from lora_lab.results.record import write_result
from lora_lab.sweeps.trial_lines import TrialLines
from lora_lab.tracking import split_logger_nodes
from lora_lab.tracking.base import flatten
from lora_lab.tracking.registry import load_tracker_class
from lora_lab.config.compose import CONF_DIR, unknown_group_choice


def record(run_dir, status="success", val=0.78125, test=0.6875, step=40, wall=71.4, reason=None):
    return {"status": status, "reason": reason, "run_dir": str(run_dir), "run_name": run_dir.name, "primary_metric": "val/accuracy",
            "metrics": {"best_val": {"step": step, "val/accuracy": val}, "test": {"test/accuracy": test}},
            "params": {"trainable_params": 74498}, "wall_time_s": wall, "optimizer_steps": 100}


def test_summary_block_holds_the_record_values(tmp_path):
    text = summary_text(record(tmp_path / "lr0.0005-seed0"))
    assert text.splitlines() == [
        "run success: lr0.0005-seed0",
        "  best val   accuracy 0.7812 at step 40",
        "  test       accuracy 0.6875",
        "  trainable  74,498 parameters",
        "  wall time  1 min 11 s (71.4 s)",
        f"  result     {tmp_path / 'lr0.0005-seed0' / 'result.json'}",
    ]


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_pipe():
    master, slave = os.openpty()  # a real terminal device
    with os.fdopen(slave, "w") as tty:
        assert ProgressPrinter(stream=tty).mode == "bar"
    os.close(master)
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as pipe:
        assert ProgressPrinter(stream=pipe).mode == "lines"
        assert ProgressPrinter(stream=pipe, mode="bar").mode == "bar"  # asked for explicitly
    os.close(read_end)
    assert ProgressPrinter(stream=sys.stdout, multirun=True).mode == "lines"  # a sweep trial logs lines


@pytest.mark.parametrize("raw,message", [
    ({"mode": "fancy"}, "progress.mode: got 'fancy'; allowed: auto, bar, lines, none"),
    ({"every_n_steps": 0}, "progress.every_n_steps: must be a positive integer, got 0"),
    ({"colour": True}, "progress.colour: unknown key; allowed: mode, every_n_steps"),
])
def test_bad_progress_options_name_key_and_allowed_values(raw, message):
    with pytest.raises(ConfigError) as err:
        progress_options(raw)
    assert str(err.value) == message


def test_a_chosen_tracker_that_is_not_installed_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` fail as if absent
    with pytest.raises(ConfigError) as err:
        load_tracker_class("mlflow", key="logger.mlflow.tracker")
    assert str(err.value) == ('logger.mlflow.tracker: mlflow is not installed; install it with: pip install -e ".[mlflow]" '
                              '(or ".[tracking]" for all trackers)')
    with pytest.raises(ConfigError, match="unknown tracker 'neptune'; allowed: mlflow, tensorboard, wandb"):
        load_tracker_class("neptune")


def _logger_nodes(overrides):
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return split_logger_nodes(OmegaConf.to_container(cfg.logger, resolve=True))


@pytest.mark.parametrize("choice,trackers", [
    ("csv", set()), ("tensorboard", {"tensorboard"}), ("[tensorboard,mlflow]", {"tensorboard", "mlflow"}),
    ("many", {"tensorboard", "mlflow", "wandb"}),
])
def test_logger_choices_keep_the_csv_log_and_add_trackers(choice, trackers):
    assert unknown_group_choice([f"logger={choice}"]) is None
    lightning, chosen = _logger_nodes([f"logger={choice}", "study=s1"])
    assert set(lightning) == {"csv"} and set(chosen) == trackers
    if "mlflow" in chosen:
        assert chosen["mlflow"]["experiment"] == "s1"  # experiment = study
    assert str(unknown_group_choice(["logger=[tensorboard,neptune]"])).startswith("logger: unknown option 'neptune'; allowed: csv, many, mlflow")


def test_flatten_gives_dotted_keys():
    assert flatten({"adapter": {"r": 8, "targets": ["q", "v"]}, "seed": 0}) == {"adapter.r": 8, "adapter.targets": "['q', 'v']", "seed": 0}


def test_trial_lines_count_k_of_n_with_scores_and_reasons(tmp_path):
    done, ok, bad, waiting = (tmp_path / n for n in ("done", "ok", "bad", "waiting"))
    write_result(done, record(done))  # finished before the sweep: skipped, counted once
    out = io.StringIO()
    with TrialLines([(str(d), d.name) for d in (done, ok, bad, waiting)], out=out, poll_s=0.05):
        time.sleep(0.01)
        write_result(ok, record(ok, val=0.5, test=0.625, wall=12.0))
        time.sleep(0.3)
        write_result(bad, record(bad, status="failed", reason="RuntimeError: boom\n  at line 3"))
        write_result(waiting, {**record(waiting), "status": "running"})  # not final: no line
    lines = out.getvalue().splitlines()
    assert lines[0] == "1/4 trials already finished (skipped)"
    assert lines[1].startswith("[2/4] ok success val=0.5000 test=0.6250 12 s  ETA ")
    assert lines[2].startswith(f"[3/4] bad failed: RuntimeError: boom at line 3 (log: {bad / 'train.log'})")
    assert len(lines) == 3


def test_trial_lines_report_a_rerun_trial_and_ignore_stale_results(tmp_path):
    stale = tmp_path / "stale"
    write_result(stale, record(stale, status="failed", reason="old failure"))
    out = io.StringIO()
    with TrialLines([(str(stale), "stale")], out=out, poll_s=0.05) as lines:
        lines.poll()
        assert out.getvalue() == ""  # written before the sweep started: not this sweep's result
        time.sleep(0.02)
        write_result(stale, json.loads((stale / "result.json").read_text()) | {"status": "success", "reason": None})
    assert out.getvalue().startswith("[1/1] stale success val=0.7812 test=0.6875 1 min 11 s")


def test_schema_validation_refuses_a_chosen_tracker_that_is_not_installed(monkeypatch):
    from lora_lab.config.trial_config import validate

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["logger=many", "backbone=tiny_bert"])
    validate(cfg)  # all three installed here
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r'^logger.wandb.tracker: wandb is not installed; install it with: pip install -e "\.\[wandb\]"'):
        validate(cfg)


def test_eta_counts_parallel_jobs_and_time_already_spent():
    from lora_lab.sweeps.trial_lines import eta_s

    assert eta_s([70.0], remaining=7, parallel=2, running_for=[70.0]) == 70.0 * 4 - 70.0
    assert eta_s([60.0, 80.0], remaining=3, parallel=1, running_for=[]) == 210.0
    assert eta_s([60.0], remaining=1, parallel=2, running_for=[65.0]) == 0.0  # the last one is about to end


def test_summary_printed_unless_a_sweep_prints_trial_lines_or_another_job_holds_the_trial(tmp_path, monkeypatch, capsys):
    from lora_lab.run.console import print_summary
    from lora_lab.results.run_summary import TRIAL_LINES_ENV

    done = record(tmp_path / "t")
    monkeypatch.delenv(TRIAL_LINES_ENV, raising=False)
    print_summary(done, multirun=True)  # `lora-lab train --multirun`: no sweep lines, so each trial sums up
    assert capsys.readouterr().out.startswith("run success: t\n")
    print_summary({**done, "status": "running"}, multirun=False)
    assert capsys.readouterr().out == ""
    with TrialLines([], out=io.StringIO()):
        assert os.environ[TRIAL_LINES_ENV] == "1"
        print_summary(done, multirun=True)
        print_summary(done, multirun=False)  # a single run is never part of a sweep
    assert capsys.readouterr().out.count("run success: t") == 1 and TRIAL_LINES_ENV not in os.environ

"""Running a trial again: a finished one is a no-op unless forced (and forced means from scratch, not
from its end-of-training checkpoint), one that another job holds is left alone, and run-control
settings (force, resume.*), the per-method lr table (``method_lr``, which acts only through
``optim.lr``) and a study file's own lookup tables (a per-task step table) do not make a trial "a
different config"."""

import re

import pytest

from lora_lab.errors import ConfigError
from lora_lab.resume.lock import RunLock
from lora_lab.train import train
from tests.resume.exact import tiny_cfg

ONE_EPOCH = ["trainer.max_epochs=1"]  # 12 optimizer steps


def counted(tmp_path, *extra):
    return tiny_cfg(*ONE_EPOCH, "+callbacks.count._target_=tests.resume.signal_at.CountBatches",
                    f"+callbacks.count.path={tmp_path / 'batches.txt'}", *extra)


def test_rerun_is_noop_and_force_retrains_from_scratch(tmp_path):
    run = tmp_path / "run"
    first = train(counted(tmp_path), run)
    mtime = (run / "result.json").stat().st_mtime_ns
    again = train(counted(tmp_path, "resume.every_n_minutes=5"), run)  # a run-control change: same trial
    assert (run / "result.json").stat().st_mtime_ns == mtime and again["curve"] == first["curve"]
    forced = train(counted(tmp_path, "force=true"), run)
    assert (tmp_path / "batches.txt").read_text().split() == ["12", "12"]  # not 12 then 0 (a resume of the end)
    assert forced["status"] == "success" and forced["metrics"] == first["metrics"] and forced["curve"] == first["curve"]


def test_a_new_method_default_lr_leaves_finished_runs_the_same_trial(tmp_path):
    run = tmp_path / "run"
    first = train(tiny_cfg(*ONE_EPOCH), run)
    mtime = (run / "result.json").stat().st_mtime_ns
    again = train(tiny_cfg(*ONE_EPOCH, "+method_lr.newmethod=0.01"), run)  # another method's default: same trial
    assert (run / "result.json").stat().st_mtime_ns == mtime and again["curve"] == first["curve"]
    with pytest.raises(ConfigError, match="different config"):  # the lr this trial uses changed: refused
        train(tiny_cfg(*ONE_EPOCH, "method_lr.lora=0.01"), run)


STEP_TABLE = "trainer.max_steps='${oc.select:task_steps.${task.name},${task_steps.default}}'"


def test_a_study_step_table_entry_for_another_task_leaves_finished_runs_the_same_trial(tmp_path):
    """A study file's own lookup table (``task_steps``, read only through ``trainer.max_steps``): giving
    another task a longer budget keeps this task's finished trial; changing this task's entry does not."""
    run = tmp_path / "run"
    first = train(tiny_cfg("+task_steps.default=12", STEP_TABLE), run)
    assert first["optimizer_steps"] == 12
    mtime = (run / "result.json").stat().st_mtime_ns
    again = train(tiny_cfg("+task_steps.default=12", "+task_steps.glue_rte=3000", STEP_TABLE), run)
    assert (run / "result.json").stat().st_mtime_ns == mtime and again["curve"] == first["curve"]
    with pytest.raises(ConfigError, match="different config"):  # this trial's own budget changed: refused
        train(tiny_cfg("+task_steps.default=24", STEP_TABLE), run)


def test_a_trial_held_by_another_job_is_left_alone(tmp_path):
    run = tmp_path / "run"
    with RunLock(run) as other:
        assert other.acquired
        record = train(tiny_cfg(*ONE_EPOCH), run)
    assert record["status"] == "running" and "held by" in record["reason"]
    assert not (run / "result.json").exists() and not (run / "checkpoints").exists()


@pytest.mark.parametrize("override,message", [
    ("resume.every_n_minutes=0", "resume.every_n_minutes: must be null or a positive number, got 0"),
    ("+resume.every_n_step=3", "resume.every_n_step: unknown key (did you mean `every_n_minutes`?); allowed: every_n_minutes"),
])
def test_bad_resume_settings_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(tiny_cfg(override), tmp_path / "run")


def test_a_different_config_never_overwrites_a_finished_trial(tmp_path, monkeypatch):
    import sys

    from lora_lab.run.hydra_task import main  # the Hydra task `python -m lora_lab.train` runs after its gate

    args = ["debug=tiny", "logger=none", "task.max_train_samples=16", "task.max_eval_samples=16", "task.batch_size=8",
            f"paths.runs_root={tmp_path}", "test_after_fit=false"]
    monkeypatch.setattr(sys, "argv", ["train", *args, "trainer.max_epochs=1"])
    main()
    path = next(tmp_path.rglob("result.json"))
    before = path.read_bytes()
    assert b'"status": "success"' in before
    monkeypatch.setattr(sys, "argv", ["train", *args, "trainer.max_epochs=2"])  # same run name, other config
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and path.read_bytes() == before

"""The SLURM launcher presets compose, take partition/account/qos/time/mem/array_parallelism from the
command line and from a git-ignored conf/local/slurm.yaml (command line wins), and turn into the
sbatch script we mean: requeueable, USR2 before the time limit, one task per GPU for DDP."""

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from lora_lab.config.compose import CONF_DIR

PRESETS = ("slurm_cpu", "slurm_gpu", "slurm_ddp")


def launcher(conf_dir: str, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def sbatch_script(params: dict) -> str:
    """The submission script hydra-submitit-launcher 1.2.0 would submit (its `launch`, minus waiting)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = dict(params)
    params.pop("_target_")
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    return executor._executor._make_submission_file_text("python -u -m submitit.core._submit FOLDER", "uid")


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_into_a_requeueable_sbatch_script(preset):
    params = launcher(CONF_DIR, f"hydra/launcher={preset}", "study=s", "hydra.launcher.partition=p1", "hydra.launcher.account=acct",
                      "hydra.launcher.qos=high", "hydra.launcher.timeout_min=90", "hydra.launcher.mem_gb=12", "hydra.launcher.array_parallelism=7")
    assert params["_target_"].endswith("SlurmLauncher") and params["array_parallelism"] == 7
    assert params["max_num_timeout"] > 0  # timeouts are requeued: the runs resume
    script = sbatch_script(params)
    for line in ("--partition=p1", "--account=acct", "--qos=high", "--time=90", "--mem=12GB", "--requeue", "--signal=USR2@120",
                 "--job-name=lora_lab-s", "export TOKENIZERS_PARALLELISM=false"):
        assert line in script, (line, script)
    if preset == "slurm_cpu":
        assert "--gpus-per-node" not in script and "--ntasks-per-node=1" in script
    if preset == "slurm_gpu":
        assert "--gpus-per-node=1" in script and "--ntasks-per-node=1" in script


def test_ddp_runs_one_task_per_gpu():
    params = launcher(CONF_DIR, "hydra/launcher=slurm_ddp", "hydra.launcher.gpus_per_node=4")
    script = sbatch_script(params)
    assert "--gpus-per-node=4" in script and "--ntasks-per-node=4" in script


def test_local_file_overrides_preset_and_command_line_overrides_both(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "local").mkdir(exist_ok=True)
    (conf / "local" / "slurm.yaml").write_text("partition: from_local\naccount: proj\ntimeout_min: 600\nsetup:\n  - module load cuda\n")
    params = launcher(str(conf), "hydra/launcher=slurm_gpu", "hydra.launcher.timeout_min=30")
    assert (params["partition"], params["account"], params["timeout_min"]) == ("from_local", "proj", 30)
    assert params["setup"] == ["module load cuda"] and params["gpus_per_node"] == 1
    # without the file the presets stand alone, and the default launcher never sees these keys
    assert launcher(CONF_DIR, "hydra/launcher=slurm_gpu")["partition"] is None
    assert "partition" not in launcher(str(conf))


def test_conf_local_is_git_ignored():
    ignored = Path(CONF_DIR).parent.joinpath(".gitignore").read_text().split()
    assert "conf/local/" in ignored

"""Finding and flattening result files: run dirs stop the walk, dot-dirs are skipped, symlinks are
followed once (never in a loop), configs are flattened into ``cfg.*`` columns."""

import json

from lora_lab.results.collect import collect, find_files, flatten
from tests.results.fake_results import make_record, write_record


def test_walk_stops_at_run_dirs_skips_dot_dirs_and_follows_links_once(tmp_path):
    root = tmp_path / "runs"
    first = write_record(root, make_record(seed=0, val=0.8))
    (first.parent / "adapter").mkdir()
    (first.parent / "adapter" / "result.json").write_text("{}")  # inside a run dir: never read
    (root / "fab" / ".hydra").mkdir()
    (root / "fab" / ".hydra" / "result.json").write_text("{}")
    elsewhere = write_record(tmp_path / "elsewhere", make_record(seed=1, val=0.7))
    (root / "linked").symlink_to(elsewhere.parent, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "fab" / "sweep_plan.json").write_text(json.dumps({"trials": []}))
    results, plans = find_files([root])
    assert sorted(p.relative_to(root).as_posix() for p in results) == sorted([first.relative_to(root).as_posix(), "linked/result.json"])
    assert [p.relative_to(root).as_posix() for p in plans] == ["fab/sweep_plan.json"]


def test_flatten_and_trial_columns(tmp_path):
    out = {}
    flatten({"adapter": {"r": 8, "targets": ["query", "value"]}, "seed": 1}, "cfg.", out)
    assert out == {"cfg.adapter.r": 8, "cfg.adapter.targets": "query+value", "cfg.seed": 1}
    write_record(tmp_path, make_record(seed=3, val=0.81, test=0.79, lr=1e-3, extra_cfg={"reference": {"scores": {"synthetic": 90}}}))
    collection = collect([tmp_path])
    row = collection.trials.iloc[0]
    assert (row["status"], row["task"], row["method"], row["seed"], row["lr"], row["val"], row["test"]) == ("success", "synthetic", "lora", 3, 1e-3, 0.81, 0.79)
    assert row["cfg.adapter.r"] == 8 and row["cfg.optim.betas"] == "0.9+0.999"
    assert not any(c.startswith("cfg.reference") for c in collection.trials.columns)
    assert collection.references == [{"scores": {"synthetic": 90}}]


def test_chance_levels():
    from lora_lab.results.collect import chance_level

    assert chance_level({"majority_val": 0.6}, "accuracy", "val/accuracy") == 0.6
    assert chance_level({"majority_val": None}, "mcc", "val/mcc") == 0.0
    assert chance_level({"untrained_val": {"step": 0, "val/exec_acc": 0.12}}, "exec_acc", "val/exec_acc") == 0.12
    assert chance_level({}, "f1", "val/f1") is None

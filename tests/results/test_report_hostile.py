"""Issue 24, class 8: the report never averages a non-finite score into a cell, refuses a record of
an unknown ``schema_version`` (and a rerun neither takes it as finished nor overwrites it), counts a
record with an unknown status, and answers an unwritable ``--out`` in one line."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from lora_lab.cli import main as lora_lab
from lora_lab.run.gate import UNKNOWN_SCHEMA, decide, read_previous
from lora_lab.results.collect import collect
from lora_lab.results.record import record_status
from lora_lab.results.report import report
from tests.resume.exact import train_cli
from tests.results.fake_results import make_record, write_record


def three_seeds(root: Path) -> None:
    for seed, (val, test) in enumerate([(0.80, 0.70), (0.82, 0.72), (0.84, 0.74)]):
        write_record(root, make_record(seed=seed, val=val, test=test))


def test_issue_example_infinity_is_never_averaged(tmp_path):
    three_seeds(tmp_path / "runs")
    path = write_record(tmp_path / "runs", make_record(seed=3, val=0.9, test=0.9))
    path.write_text(path.read_text().replace('"test/accuracy": 0.9', '"test/accuracy": Infinity'))
    assert "Infinity" in path.read_text()
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False)
    cell = result["aggregate"].cells.iloc[0]
    assert math.isclose(cell["mean"], 0.72, abs_tol=1e-12) and cell["n"] == 3  # the three finite seeds, not inf
    assert "non-finite score (test=inf), never averaged" in result["markdown"]
    assert "inf" not in (tmp_path / "out" / "table.csv").read_text().lower()


@pytest.mark.parametrize("literal,name", [("NaN", "val=nan"), ("-Infinity", "val=-inf"), ("Infinity", "val=inf")])
def test_non_finite_validation_score_is_excluded_and_named(tmp_path, literal, name):
    three_seeds(tmp_path / "runs")
    path = write_record(tmp_path / "runs", make_record(seed=3, val=0.5, test=0.99))
    record = json.loads(path.read_text())
    record["metrics"]["best_val"]["val/accuracy"] = "PLACEHOLDER"
    path.write_text(json.dumps(record).replace('"PLACEHOLDER"', literal))
    trials = collect([tmp_path / "runs"]).trials
    row = trials[trials["seed"] == 3].iloc[0]
    assert row["nonfinite"] == name and row["val"] is None or math.isnan(row["val"])
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False)
    cell = result["aggregate"].cells.iloc[0]
    assert math.isclose(cell["mean"], 0.72, abs_tol=1e-12) and cell["n"] == 3  # test 0.99 of the bad run stays out
    assert f"success with a non-finite validation score ({name}) (not in the table)" in result["markdown"]


@pytest.mark.parametrize("version", [99, 0, "2", True, None, 2.0])
def test_unknown_schema_version_is_corrupt_with_one_reason(tmp_path, version):
    three_seeds(tmp_path / "runs")
    record = make_record(seed=3, val=0.99, test=0.99)
    record["schema_version"] = version
    write_record(tmp_path / "runs", record)
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False)
    assert result["aggregate"].cells.iloc[0]["n"] == 3
    trials = result["trials"]
    bad = trials[trials["status"] == "corrupt"]
    assert len(bad) == 1 and f"schema_version {version!r}; this lora_lab reads 1, 2" in bad.iloc[0]["reason"]
    assert "Trials: 4 (3 success, 0 failed, 0 cancelled, 0 running, 1 corrupt, 0 missing;" in result["markdown"]


@pytest.mark.parametrize("status", ["weird", "SUCCESS", "", 3])
def test_unknown_status_is_counted(tmp_path, status):
    three_seeds(tmp_path / "runs")
    record = make_record(seed=3, val=0.99, test=0.99)
    record["status"] = status
    write_record(tmp_path / "runs", record)
    result = report([tmp_path / "runs"], out=tmp_path / "out", plots=False, page=False)
    assert "Trials: 4 (3 success, 0 failed, 0 cancelled, 0 running, 1 corrupt, 0 missing;" in result["markdown"]
    assert result["aggregate"].cells.iloc[0]["n"] == 3


def test_report_out_that_is_a_file_or_unwritable_is_one_line(tmp_path, capsys):
    three_seeds(tmp_path / "runs")
    (tmp_path / "f").write_text("x")
    for out, words in ((tmp_path / "f", "existing file"), (tmp_path / "f" / "sub", "cannot write"), (Path("/proc/1/nope"), "cannot write")):
        assert lora_lab(["report", str(tmp_path / "runs"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: --out: ") and words in err, err


TINY = ["debug=tiny", "task.max_train_samples=32", "task.max_eval_samples=16", "task.batch_size=8", "trainer.max_epochs=1",
        "test_after_fit=false"]


def test_rerun_over_an_unknown_schema_record_refuses_and_keeps_it(tmp_path, capsys):
    """Before: read silently, and a rerun skipped it as finished. Now: exit 2, one line, byte-identical; force=true replaces it."""
    argv = [*TINY, f"paths.runs_root={tmp_path / 'runs'}"]
    assert train_cli(argv) == 0
    path = next((tmp_path / "runs").rglob("result.json"))
    record = json.loads(path.read_text())
    record["schema_version"] = 3
    path.write_text(json.dumps(record))
    assert record_status(path.parent) == "corrupt"
    assert read_previous(path.parent).status == UNKNOWN_SCHEMA
    with pytest.raises(ValueError, match="schema_version 3"):
        decide(read_previous(path.parent), {}, False, path.parent)
    before = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in path.parent.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert train_cli(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: run_name: ") and "schema_version 3" in err[0] and "force=true" in err[0]
    assert {p: hashlib.md5(p.read_bytes()).hexdigest() for p in path.parent.rglob("*") if p.is_file()} == before
    assert train_cli([*argv, "force=true"]) == 0
    assert json.loads(path.read_text())["schema_version"] == 2 and json.loads(path.read_text())["status"] == "success"

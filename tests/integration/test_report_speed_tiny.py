"""`python benchmarks/report_speed.py` at a small N, so the benchmark never rots: it writes its
records, runs the real `lora-lab report` on them, checks the report's output and writes its table.
No wall-clock limit here: the time is measured by the benchmark and committed with it."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("report_speed", ROOT / "benchmarks" / "report_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_expected_rows_follow_the_grid_order():
    bench = load_benchmark()
    assert bench.expected_rows(1) == 1  # lora r=1
    assert bench.expected_rows(42) == 1 and bench.expected_rows(43) == 2  # 3 lrs x 14 seeds per rank
    assert bench.expected_rows(252) == 6 and bench.expected_rows(1260) == 6  # one task reaches every rank
    assert bench.expected_rows(1261) == 7 and bench.expected_rows(5000) == 24 and bench.expected_rows(5040) == 24


@pytest.mark.slow
def test_the_benchmark_runs_the_report_and_writes_its_table(tmp_path):
    bench = load_benchmark()
    out = tmp_path / "report_speed.md"
    times = bench.main(["--n", "100", "--rounds", "1", "--out", str(out)])
    assert len(times) == 1 and times[0][0] > 0 and times[0][1] > 0
    text = out.read_text()
    assert "`python benchmarks/report_speed.py --n 100 --rounds 1`" in text
    (row,) = re.findall(r"^\| 1 \| ([0-9.]+) \| ([0-9.]+) \|$", text, flags=re.M)
    assert float(row[0]) == pytest.approx(times[0][0], abs=0.01)
    assert "100 fabricated result.json files" in text


def test_the_report_check_refuses_a_wrong_count():
    bench = load_benchmark()
    with pytest.raises(SystemExit, match="did not count 100"):
        bench.check_output("Trials: 99 (99 success)\n| a |\n| b |\n", 100)
    with pytest.raises(SystemExit, match="printed 2 table rows, expected 3"):
        bench.check_output("Trials: 100 (100 success)\n| h |\n| a |\n| b |\n", 100)

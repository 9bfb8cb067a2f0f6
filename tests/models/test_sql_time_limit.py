"""The SQL judge's time limit holds for any predicted SQL, including one slow function call: ``instr``
over strings of ~800,000 characters built with ``||`` inside one SELECT ran 38 s at a 1 s limit
before strings were capped (the progress handler cannot stop a single call)."""

import time

import pytest

from lora_lab.tasks.text_to_sql.metrics import MIN_VALUE_CHARS, build_database, execute
from tests.models.test_sql_eval import TABLE


def long_string_attack(calls: int, base: int, levels: int = 5) -> str:
    """``calls`` worst-case ``instr`` calls on a string of ``base * 8**levels`` characters."""
    inner = "SELECT '" + "a" * base + "' AS s"
    for _ in range(levels):
        inner = f"SELECT {'||'.join(['s'] * 8)} AS s FROM ({inner})"
    return "SELECT " + ", ".join(["instr(s, substr(s, 1, length(s) / 2)||'b')"] * calls) + f" FROM ({inner})"


@pytest.mark.parametrize("calls,base", [(1, 24), (3, 24), (3, 2)])  # 786,432 chars; 65,536 chars
def test_one_slow_function_call_cannot_outlast_the_limit(calls, base):
    sql = long_string_attack(calls, base)
    assert len(sql) < 4000  # fits the prediction cap
    started = time.process_time()  # CPU seconds: the 2-core CI box may be loaded, the judge's own work is what counts
    result = execute(build_database(TABLE), sql, timeout_s=1.0)
    assert time.process_time() - started < 1.5
    assert not result.ok and "too big" in result.error


def test_strings_up_to_the_cap_still_work():
    under = long_string_attack(3, 1, levels=4)  # 4,096 characters: allowed, fast
    started = time.process_time()
    result = execute(build_database(TABLE), under, timeout_s=1.0)
    assert result.ok and time.process_time() - started < 1.0 and 4096 < MIN_VALUE_CHARS

"""Importing the generation metrics (rouge-score, hence absl) while sys.stderr is swapped must not let a
later logging reconfiguration -- which every Hydra job does -- close that stream. Before the fix,
absl's handler closed the stream it had bound at import: pytest's capture, a redirect_stderr buffer
or a notebook's stream died at the next trial ("I/O operation on closed file")."""

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import contextlib, io, logging.config
    swapped = io.StringIO()
    with contextlib.redirect_stderr(swapped):
        import lora_lab.tasks.generation.metrics
    logging.config.dictConfig({"version": 1})  # what Hydra's job logging does before each trial
    print("closed" if swapped.closed else "open")
""")


def test_logging_reconfiguration_leaves_a_stream_swapped_in_at_import_open():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["open"]

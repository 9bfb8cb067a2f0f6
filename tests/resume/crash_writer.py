"""Child process for the SIGKILL tests: ``python -m tests.resume.crash_writer MODE PATH``.

Writes version 1, 2, 3, ... of one file forever, printing each version once it is complete, until the
parent kills it. Every version is self-checking (all values equal the version), so a reader can tell a
complete file from a torn one. Modes:

- ``result``: `lora_lab.results.record.write_result` (PATH is the run dir);
- ``checkpoint``: `lora_lab.resume.checkpoint_io.AtomicCheckpointIO.save_checkpoint` (PATH is last.ckpt);
- ``inplace``: the control, a naive ``open(path, "wb")`` + chunked write, to prove the test can see a
  torn file.

``os.fsync`` is slowed down (as on a busy network filesystem) so the window in which a write is in
flight is wide enough for the parent to land its kill inside it.
"""

import os
import sys
import time

N = 200_000  # values per version: a few MB per write

_fsync = os.fsync


def slow_fsync(fd):
    time.sleep(0.15)
    _fsync(fd)


def main(mode: str, path: str) -> None:
    os.fsync = slow_fsync
    version = 0
    while True:
        version += 1
        if mode == "result":
            from lora_lab.results.record import write_result

            write_result(path, {"status": "running", "version": version, "values": [version] * N})
        elif mode == "checkpoint":
            import torch

            from lora_lab.resume.checkpoint_io import AtomicCheckpointIO

            AtomicCheckpointIO().save_checkpoint({"version": version, "values": torch.full((N * 4,), float(version))}, path)
        elif mode == "inplace":
            data = (str(version) + ",") * N
            with open(path, "w") as fh:
                for i in range(0, len(data), len(data) // 8):
                    fh.write(data[i : i + len(data) // 8])
                    fh.flush()
                    time.sleep(0.02)
                os.fsync(fh.fileno())
        else:
            raise SystemExit(f"unknown mode {mode}")
        print(version, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

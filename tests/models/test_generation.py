"""The generation module on tiny random LLaMA (causal LM) and T5 (seq2seq): loss on answer tokens only,
batched left-padded decoding, decode -> extract -> execute scoring, and one training run per
registered adapter method on both backbones."""

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from lora_lab.adapters import METHODS
from lora_lab.models.backbones import generation_model_kind, load_tokenizer, parse_backbone_config
from lora_lab.tasks.generation.data import collate, eos_id
from lora_lab.tasks.registry import parse_task_config
from lora_lab.tasks.text_to_sql.data import TextToSqlDataModule
from lora_lab.tasks.text_to_sql.module import TextToSqlModule, extract_sql
from tests.sql_helpers import bpe_tokenizer_dir, tiny_backbone

CONF = Path(__file__).resolve().parents[2] / "conf"
TASK = {"name": "wikisql_synthetic", "kind": "wikisql_synthetic", "train_size": 16, "val_size": 6, "test_size": 6,
        "batch_size": 4, "eval_batch_size": 6, "max_new_tokens": 24, "eval_untrained": False}


@pytest.fixture(scope="module")
def tokdir(tmp_path_factory):
    return bpe_tokenizer_dir(tmp_path_factory.mktemp("tok"))


def build(tokdir, kind: str, adapter: dict | None = None, **task):
    task = {**TASK, **task}
    bb = tiny_backbone(kind, tokdir)
    tcfg = parse_task_config(task)
    spec = tcfg.spec()
    bcfg = parse_backbone_config(bb)
    tok = load_tokenizer(bcfg)
    model_kind = generation_model_kind(bcfg)
    dm = TextToSqlDataModule(tcfg, spec, tok, model_kind)
    dm.setup()
    torch.manual_seed(0)
    module = TextToSqlModule(bb, adapter or {"method": "lora", "r": 2, "alpha": 4}, {"lr": 1e-2}, task, spec.__dict__, model_kind,
                              tok.pad_token_id, eos_id(tok))
    module.configure_model()
    return module, dm, tok


def test_model_kind_by_backbone(tokdir):
    assert generation_model_kind(parse_backbone_config(tiny_backbone("llama", tokdir))) == "causal_lm"
    assert generation_model_kind(parse_backbone_config(tiny_backbone("t5", tokdir))) == "seq2seq"


def test_labels_mask_prompt_and_padding(tokdir):
    module, dm, tok = build(tokdir, "llama")
    items = [dm.splits["train"][i] for i in range(3)]
    batch = collate(items, "causal_lm", tok.pad_token_id, evaluation=True)
    width = batch["input_ids"].shape[1]
    assert len({len(it["prompt"]) + len(it["target"]) for it in items}) > 1  # really padded
    for row, it in enumerate(items):
        p, t = len(it["prompt"]), len(it["target"])
        pad = width - p - t  # left padding: every answer ends at the last column
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        assert (labels[: pad + p] == -100).all()
        assert labels[pad + p :].tolist() == it["target"] == ids[pad + p :].tolist() and ids[pad : pad + p].tolist() == it["prompt"]
        assert it["target"][-1] == eos_id(tok) and tok.decode(it["target"], skip_special_tokens=True) == " " + it["example"].gold_sql
        assert batch["attention_mask"][row].tolist() == [0] * pad + [1] * (p + t)
        assert batch["prompt_ids"][row, -p:].tolist() == it["prompt"] and batch["prompt_mask"][row].sum() == p
    seq = collate(items, "seq2seq", tok.pad_token_id)
    assert seq["input_ids"][0, : len(items[0]["prompt"])].tolist() == items[0]["prompt"]
    assert seq["labels"][0, : len(items[0]["target"])].tolist() == items[0]["target"]


def test_causal_loss_is_on_answer_tokens_only(tokdir):
    module, dm, tok = build(tokdir, "llama")
    module.model.eval()
    with torch.no_grad():  # a peaked output distribution, so prompt and answer tokens have different losses
        torch.nn.init.normal_(module.model.lm_head.weight, std=1.0)
    items = [dm.splits["train"][i] for i in range(4)]
    loss = module.task_loss(collate(items, "causal_lm", tok.pad_token_id)).detach()
    # reference: every example alone (no padding), full logits, cross-entropy over its answer tokens
    answer_sum, answer_n, all_sum, all_n = 0.0, 0, 0.0, 0
    with torch.no_grad():
        for it in items:
            ids = torch.tensor([it["prompt"] + it["target"]])
            logits = module.model(input_ids=ids).logits[0, :-1]
            p = len(it["prompt"])
            answer_sum += float(F.cross_entropy(logits[p - 1 :], torch.tensor(it["target"]), reduction="sum"))
            answer_n += len(it["target"])
            all_sum += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            all_n += ids.shape[1] - 1
    assert float(loss) == pytest.approx(answer_sum / answer_n, abs=1e-4)
    assert abs(float(loss) - all_sum / all_n) > 0.1  # not the loss over every token
    assert answer_n < all_n / 3


def test_seq2seq_loss_is_on_answer_tokens(tokdir):
    module, dm, tok = build(tokdir, "t5")
    module.model.eval()
    items = [dm.splits["train"][i] for i in range(3)]
    loss = module.task_loss(collate(items, "seq2seq", tok.pad_token_id)).detach()
    total, n = 0.0, 0
    with torch.no_grad():
        for it in items:
            out = module.model(input_ids=torch.tensor([it["prompt"]]), labels=torch.tensor([it["target"]]))
            total += float(out.loss) * len(it["target"])
            n += len(it["target"])
    assert float(loss) == pytest.approx(total / n, abs=1e-4)


def test_left_padded_batched_greedy_matches_one_by_one(tokdir):
    module, dm, tok = build(tokdir, "llama", max_new_tokens=12, val_size=4)
    module.model.eval()
    for layer in module.method.layers.values():  # a non-trivial adapter on the decoding path
        torch.nn.init.normal_(layer.lora_B, std=0.5)
    batch = next(iter(dm.val_dataloader()))
    assert len({len(it["prompt"]) for it in dm.splits["val"]}) > 1  # really padded
    together = module.generate_text(batch["prompt_ids"], batch["prompt_mask"])
    alone = []
    for it in dm.splits["val"]:
        ids = torch.tensor([it["prompt"]])
        alone += module.generate_text(ids, torch.ones_like(ids))
    assert together == alone
    assert all(together) and len(set(together)) > 1  # real, varied continuations, not empty strings


@pytest.mark.parametrize("kind", ["llama", "t5"])
def test_scoring_decodes_the_answer_only(tokdir, kind, monkeypatch):
    module, dm, tok = build(tokdir, kind)
    batch = next(iter(dm.val_dataloader()))
    items = list(dm.splits["val"])

    def answer_with(texts):
        def fake_generate(input_ids, attention_mask, generation_config):
            assert generation_config.max_new_tokens == 24 and not generation_config.do_sample
            new = [tok(t, add_special_tokens=False)["input_ids"] + [eos_id(tok)] for t in texts]
            new = torch.tensor([s + [tok.pad_token_id] * (max(map(len, new)) - len(s)) for s in new])
            if kind == "llama":
                return torch.cat([input_ids, new], dim=1)  # causal LMs return prompt + continuation
            return torch.cat([torch.zeros(len(new), 1, dtype=torch.long), new], dim=1)  # decoder start + answer
        return fake_generate

    monkeypatch.setattr(module.model, "generate", answer_with([" " + it["example"].gold_sql + "\n\nBecause ..." for it in items]))
    module._eval_step(batch, "val")
    out = module._compute("val")
    assert out["val/exec_acc"] == 1.0 and out["val/lf_acc"] == 1.0 and out["val/invalid_rate"] == 0.0 and out["val/n"] == len(items)
    assert module.predictions["val"][0]["predicted"] == items[0]["example"].gold_sql
    monkeypatch.setattr(module.model, "generate", answer_with([" DROP TABLE t"] * len(items)))
    module._eval_step(batch, "val")
    out = module._compute("val")
    assert out["val/exec_acc"] == 0.0 and out["val/invalid_rate"] == 1.0


@pytest.mark.parametrize(
    "text,expected",
    [
        (' SELECT "a" FROM t <|im_end|>', 'SELECT "a" FROM t <|im_end|>'),
        ('SELECT "a"\n  FROM t\n\nThis query selects', 'SELECT "a" FROM t'),
        ('```sql\nSELECT "a" FROM t\n```\nDone', 'SELECT "a" FROM t'),
        ('SELECT "a" FROM t; DROP TABLE t;', 'SELECT "a" FROM t;'),
        # literals are kept verbatim: a ';' or a double space inside a value is part of the value
        (' SELECT "a" FROM t WHERE "b" = \'Smith; Jones\'; x', 'SELECT "a" FROM t WHERE "b" = \'Smith; Jones\';'),
        ("SELECT  \"a\"\n FROM t WHERE \"b\" = 'A  B'", "SELECT \"a\" FROM t WHERE \"b\" = 'A  B'"),
        ("", ""),
    ],
)
def test_extract_sql(text, expected):
    assert extract_sql(text) == expected


def _adapter_options() -> list[tuple[str, dict]]:
    """Every registered method (its conf/adapter file where there is one) plus presets such as pissa."""
    from omegaconf import OmegaConf

    options = {}
    for path in sorted((CONF / "adapter").glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path))
        if raw.get("method") in METHODS:
            options[path.stem] = raw
    for name in METHODS:
        options.setdefault(name, {"method": name})
    return sorted(options.items())


@pytest.mark.parametrize("kind", ["llama", "t5"])
@pytest.mark.parametrize("name,adapter", _adapter_options(), ids=[n for n, _ in _adapter_options()])
def test_each_adapter_method_trains_on_tiny_backbones(tokdir, kind, name, adapter):
    if name == "bitfit":  # LLaMA and T5 linear layers have no bias terms: BitFit has nothing to train, one line says so
        from lora_lab.errors import ConfigError

        with pytest.raises(ConfigError, match="'bitfit' trains no parameter of this .* no bias terms"):
            build(tokdir, kind, adapter)
        return
    module, dm, tok = build(tokdir, kind, adapter)
    names = {id(p): n for n, p in module.model.named_parameters()}
    trainable = {n for n, p in module.model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in module.model.named_parameters()}
    losses = []
    original = module.task_loss

    def recording_loss(batch):
        loss = original(batch)
        losses.append(float(loss.detach()))
        return loss

    module.task_loss = recording_loss
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2 and len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    changed = {n for n, p in module.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable  # the frozen backbone never moves
    for layer_name, layer in module.method.layers.items():  # every adapted module learned something
        assert any(names[id(p)] in changed for _, p in layer.adapter_parameters()), layer_name


def test_gold_sql_with_special_values_survives_extraction():
    """A perfect prediction stays correct after extraction, whatever its literal holds."""
    from lora_lab.tasks.text_to_sql.wikisql import LogicalForm, SqlExample, Table
    from lora_lab.tasks.text_to_sql.metrics import judge

    table = Table("p", ("Name", "Team"), ("text", "text"), (("Smith; Jones", "A  B"), ("Lee", "C")))
    for cond in ((0, 0, "Smith; Jones"), (1, 0, "A  B")):
        ex = SqlExample("?", table, LogicalForm(1 - cond[0], 0, (cond,)))
        j = judge(extract_sql(" " + ex.gold_sql + "\n\nThe query selects"), ex)
        assert j.exec_correct and j.lf_correct, (ex.gold_sql, j)


def test_encoder_only_backbone_is_refused_for_generation():
    from lora_lab.errors import ConfigError
    from lora_lab.models.backbones import parse_backbone_config

    bert = parse_backbone_config({"name": "tiny-bert", "random_init": {"model_type": "bert", "hidden_size": 16, "num_hidden_layers": 1,
                                                                       "num_attention_heads": 2, "intermediate_size": 32}})
    with pytest.raises(ConfigError, match=r"backbone: .*encoder-only model \(bert\)"):
        generation_model_kind(bert)
    llama = parse_backbone_config({"name": "tiny-llama", "random_init": {"model_type": "llama", "hidden_size": 16, "num_hidden_layers": 1,
                                                                         "num_attention_heads": 2, "intermediate_size": 32}})
    t5 = parse_backbone_config({"name": "tiny-t5", "random_init": {"model_type": "t5", "d_model": 16, "num_layers": 1, "num_heads": 2}})
    assert generation_model_kind(llama) == "causal_lm" and generation_model_kind(t5) == "seq2seq"

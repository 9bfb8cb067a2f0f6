"""The task-family registry: every kind belongs to one family, every family builds its parts the same
way, every ``conf/task`` option (bring-your-own-data ones pointed at files written here) parses and
loads, the generation metrics by hand, and the data pipelines of the presets unchanged by the move
into families."""

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lora_lab.models.backbones import load_tokenizer, parse_backbone_config
from lora_lab.tasks.base import TaskConfig
from lora_lab.tasks.classification.data import ClassificationDataModule
from lora_lab.tasks.generation.metrics import TextScores, exact_match, rouge_l
from lora_lab.tasks.registry import FAMILIES, TASK_SCHEMAS, family_of, parse_task_config
from lora_lab.tasks.text_to_sql.data import TextToSqlDataModule
from lora_lab.config.trial_config import validate
from lora_lab.config.compose import CONF_DIR
from tests.integration.test_train_cli import write_rte

def byo_overrides(task: str, root: Path) -> list[str]:
    """Overrides pointing a bring-your-own-data task option (a schema with ``example_row``) at JSONL
    files written under ``root``, whose rows are the schema's own `example_row` (the columns and labels
    the option configures, so a config-only task with other columns is exercised as configured)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        node = OmegaConf.to_container(compose("train", overrides=[f"task={task}"]).task, resolve=True)
    schema = TASK_SCHEMAS[node["kind"]]
    if not hasattr(schema, "example_row"):
        return []
    overrides = [f"task.data_dir={root}"]
    if "labels" in node and node["labels"] is None and not node.get("regression"):
        node["labels"] = ["negative", "positive"]
        overrides.append("task.labels=[negative,positive]")
    row = schema(**node).example_row()
    for split in ("train", "val", "test"):
        name = node["data_files"].get(split) or f"{split}.jsonl"
        (root / name).write_text("".join(json.dumps(row) + "\n" for _ in range(3)))
        overrides.append(f"task.data_files.{split}={name}")
    return overrides


def backbone_for(task: str) -> list[str]:
    """A tiny backbone the task's family can run: the default encoder for classification, a tiny
    decoder for the generation families (an encoder-only backbone is refused for them)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        kind = compose("train", overrides=[f"task={task}"]).task.kind
    return [] if TASK_SCHEMAS[kind].family == "classification" else ["backbone=tiny_gpt2"]


@pytest.mark.parametrize("task", sorted(p.stem for p in (Path(CONF_DIR) / "task").glob("*.yaml")))
def test_every_task_option_parses_into_its_familys_schema(task, tmp_path):
    overrides = [f"task={task}", *backbone_for(task), *byo_overrides(task, tmp_path)]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    _, task_cfg, _ = validate(cfg)
    family = family_of(task_cfg)
    assert type(task_cfg) in family.schemas and task_cfg.spec().family == family.name
    assert set(task_cfg.spec().metrics) <= {m.name for m in family.metrics} | {"commonprefix"}
    if hasattr(task_cfg, "example_row"):  # the shipped example configs read real rows
        examples = task_cfg.load_examples()
        assert list(examples) == ["train", "val", "test"] and all(len(v) == 3 for v in examples.values())


def test_summarization_example_is_config_only(tmp_path):
    overrides = ["task=summarization_example", *byo_overrides("summarization_example", tmp_path)]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    task = parse_task_config(OmegaConf.to_container(cfg.task, resolve=True))
    example = task.load_examples()["train"][0]
    assert example.prompt == "Summarize the article in one sentence.\n\nArticle: some document\n\nSummary:" and example.target == "some summary"
    assert task.spec().primary == "rouge_l" and cfg.run_name.startswith("summarization_example/")


def test_each_kind_belongs_to_exactly_one_family():
    kinds = [s for family in FAMILIES.values() for s in family.schemas]
    assert len(kinds) == len(set(kinds)) == len(TASK_SCHEMAS)
    assert set(FAMILIES) == {"classification", "generation", "text_to_sql"}
    for kind, schema in TASK_SCHEMAS.items():
        assert issubclass(schema, TaskConfig) and FAMILIES[schema.family].name == schema.family and schema().kind == kind


def test_unknown_kind_lists_every_kind():
    from lora_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="task.kind: unknown task kind 'images'; allowed: glue, synthetic_sentiment, text_classification, "
                                          "text_generation, wikisql, wikisql_synthetic"):
        parse_task_config({"kind": "images"})


@pytest.mark.parametrize(
    "prediction,target,em,rouge",
    [
        ("the cat sat", "the cat sat", 1.0, 1.0),
        ("  the cat\n sat ", "the cat sat", 1.0, 1.0),
        ("the cat", "the cat sat", 0.0, 2 * (1.0 * 2 / 3) / (1.0 + 2 / 3)),  # LCS 2: P = 1, R = 2/3
        ("sat the cat", "the cat sat", 0.0, 2 / 3),  # LCS "the cat": P = R = 2/3
        ("The CAT, sat!", "the cat sat", 0.0, 1.0),  # ROUGE tokens are lower-cased words
        ("dog", "the cat sat", 0.0, 0.0),
    ],
)
def test_generation_metrics_by_hand(prediction, target, em, rouge):
    assert exact_match(prediction, target) == em
    assert rouge_l(prediction, target) == pytest.approx(rouge)


def test_text_scores_average_over_updates():
    metric = TextScores(("exact_match", "rouge_l"))
    metric.update([{"exact_match": 1.0, "rouge_l": 1.0}, {"exact_match": 0.0, "rouge_l": 0.5}])
    metric.update([{"exact_match": 0.0, "rouge_l": 0.0}])
    values = {k: float(v) for k, v in metric.compute().items()}
    assert values == pytest.approx({"exact_match": 1 / 3, "rouge_l": 0.5, "n": 3})


def _digest(datamodule) -> str:
    """SHA-1 of the first two batches of every loader (ids, masks, labels): order, tokenisation, padding."""
    datamodule.setup()
    h = hashlib.sha1()
    loaders = [datamodule.train_dataloader(), datamodule.val_dataloader()] + ([datamodule.test_dataloader()] if "test" in datamodule.splits else [])
    for loader in loaders:
        for batch in itertools.islice(loader, 2):
            for key in ("input_ids", "attention_mask", "labels"):
                h.update(batch[key].numpy().tobytes())
    return h.hexdigest()


def test_preset_data_pipelines_unchanged_by_the_move_into_families(tmp_path):
    """The digests were computed with the code before task families existed (``lora_lab.data.*`` at
    0fab642) by the same function and settings; equal digests mean the same examples, subsets,
    shuffled order, token ids and padding, so GLUE, synthetic and WikiSQL results are unchanged."""
    tok = load_tokenizer(parse_backbone_config(OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "backbone/tiny_bert.yaml"))))
    syn = parse_task_config({"kind": "synthetic_sentiment", "max_train_samples": 96, "max_eval_samples": 48, "batch_size": 16})
    assert _digest(ClassificationDataModule(syn, syn.spec(), tok, seed=1)) == "d6da9ba5f4f7027f187dd6a71f42fae90edafcd3"
    sql = parse_task_config({"kind": "wikisql_synthetic", "train_size": 40, "val_size": 12, "test_size": 12, "prompt_rows": 2,
                             "batch_size": 4, "eval_batch_size": 4})
    assert _digest(TextToSqlDataModule(sql, sql.spec(), tok, "causal_lm", seed=3)) == "61f8ea3f0a7bbfa188789177c19264dfb73caf75"
    assert _digest(TextToSqlDataModule(sql, sql.spec(), tok, "seq2seq", seed=3)) == "a1b106fcaf2b778b08711ce870cccc7ffabf5244"
    write_rte(tmp_path / "glue", n=40)
    glue = parse_task_config({"kind": "glue", "glue_task": "rte", "data_dir": str(tmp_path / "glue"), "batch_size": 8, "eval_batch_size": 8})
    assert _digest(ClassificationDataModule(glue, glue.spec(), tok, seed=2)) == "77647fa76258a91923c2c7f7f7659ecdf47e440a"

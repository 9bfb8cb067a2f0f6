"""Generic method contract, run for every row of `tests.contract.table` on every tiny backbone.

Per cell (method x init x backbone): identity at init (where promised), only declared parameters
change after an optimizer step (taken through the method's own ``param_groups`` and hooks), parameter
groups cover the trainable parameters exactly once, merged == unmerged and unmerge restores ``W``,
save/load gives identical logits, the adapter parameter count equals the method's closed form, PEFT
parity (forward and gradients) and PEFT export (files loaded by ``PeftModel.from_pretrained``) where the
method registers a PEFT exporter, PEFT's optimizer groups where the method shapes the optimizer, and
determinism.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from lora_lab.adapters import build_method, parse_config
from lora_lab.adapters.export_registry import PEFT_EXPORTERS
from lora_lab.adapters.io import adapter_checkpoint_state, adapter_meta, load_adapter, save_adapter
from lora_lab.adapters.peft_export import convert_to_peft, export_run
from lora_lab.models.optim import build_optimizer

from tests.contract.backbones import BACKBONES
from tests.contract.table import PEFT_SLOW_BACKBONES, ROWS, TARGETS
from tests.helpers import perturb_adapters

CELLS = [
    pytest.param(row, BACKBONES[b], id=f"{row.id}-{b}", marks=[pytest.mark.slow] if row.slow or b in row.slow_on else [])
    for row in ROWS
    for b in BACKBONES
]
PEFT_CELLS = [
    pytest.param(*c.values, id=c.id, marks=c.marks or ([pytest.mark.slow] if c.values[1].name in PEFT_SLOW_BACKBONES else []))
    for c in CELLS
    if c.values[0].adapter["method"] in PEFT_EXPORTERS
]
OPTIM_CELLS = [c for c in CELLS if c.values[0].peft_optimizer is not None]
INIT_CELLS = [c for c in PEFT_CELLS if c.values[0].peft_init_equal]
OPTIM = {"lr": 1e-2, "weight_decay": 0.01, "scheduler": "constant", "warmup_steps": 0}


def adapted(row, backbone, seed: int = 0):
    """``(model, method, report)``: a fresh backbone with the row's adapter attached (seeded)."""
    model = backbone.fresh()
    torch.manual_seed(seed)
    method = build_method(parse_config({**row.adapter, "targets": TARGETS}))
    report = method.attach(model, backbone.model_type, backbone.heads(model))
    return model, method, report


def loss_of(logits: torch.Tensor) -> torch.Tensor:
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(11))
    return (logits.float() * weights).sum()


def one_step(model, method, backbone) -> None:
    """One training step as the Lightning module takes it: task loss + regulariser, the method's
    optimizer groups, the post-step hook."""
    opt = build_optimizer(method.param_groups(model), OPTIM, total_steps=10)["optimizer"]
    loss = loss_of(backbone.logits(model))
    reg = method.regularization_loss()
    (loss if reg is None else loss + reg).backward()
    opt.step()
    method.on_optimizer_step(0, 10)


def declared_keys(method) -> set[str]:
    """``state_dict`` keys of the adapter layers the method may change: parameters and declared buffers."""
    return {f"{n}.{k}" for n, layer in method.layers.items() for k in (*layer.adapter_parameter_names, *layer.adapter_buffer_names)}


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----- init, step, count ------------------------------------------------------------------------
@pytest.mark.parametrize("row,backbone", CELLS)
def test_identity_at_init(row, backbone):
    if not row.identity_at_init:
        pytest.skip(f"{row.id} does not promise identity at init")
    base = backbone.logits(backbone.fresh())
    model, _, _ = adapted(row, backbone)
    torch.testing.assert_close(backbone.logits(model), base, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("row,backbone", CELLS)
def test_only_declared_parameters_change_after_a_step(row, backbone):
    model, method, report = adapted(row, backbone)
    heads = {f"{h}.{k}" for h in report.head_modules for k in model.get_submodule(h).state_dict()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.{k}" for n, layer in method.layers.items() for k in layer.adapter_parameter_names} | {
        h for h in heads if h in dict(model.named_parameters())
    }
    before = snapshot(model)
    one_step(model, method, backbone)
    after = snapshot(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed <= declared_keys(method) | heads, sorted(changed - declared_keys(method) - heads)
    assert changed & {f"{n}.{k}" for n, layer in method.layers.items() for k in layer.adapter_parameter_names}


@pytest.mark.parametrize("row,backbone", CELLS)
def test_param_groups_cover_the_trainable_parameters_once(row, backbone):
    model, method, _ = adapted(row, backbone)
    grouped = [id(p) for g in method.param_groups(model) for p in g["params"]]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("row,backbone", CELLS)
def test_parameter_count_equals_the_closed_form(row, backbone):
    model, method, report = adapted(row, backbone)
    shapes = {n: (layer.in_features, layer.out_features) for n, layer in method.layers.items()}
    assert report.adapter_params == method.closed_form_params(shapes) > 0
    assert report.adapter_params == sum(p.numel() for layer in method.layers.values() for _, p in layer.adapter_parameters())
    assert report.trainable_params == report.adapter_params + report.head_params


@pytest.mark.parametrize("row,backbone", CELLS)
def test_determinism(row, backbone):
    states = []
    for _ in range(2):
        model, method, _ = adapted(row, backbone, seed=5)
        one_step(model, method, backbone)
        states.append(adapter_checkpoint_state(model, method))
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


# ----- merge, save/load ---------------------------------------------------------------------------
@pytest.mark.parametrize("row,backbone", CELLS)
def test_merged_equals_unmerged_and_unmerge_restores_w(row, backbone):
    model, method, _ = adapted(row, backbone)
    perturb_adapters(method)
    unmerged = backbone.logits(model)
    weights = {n: layer.base_weight().detach().clone() for n, layer in method.layers.items()}
    method.merge()
    torch.testing.assert_close(backbone.logits(model), unmerged, rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(layer.base_weight(), weights[n]) for n, layer in method.layers.items())
    method.unmerge()
    for n, layer in method.layers.items():
        torch.testing.assert_close(layer.base_weight(), weights[n], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(backbone.logits(model), unmerged, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("row,backbone", CELLS)
def test_save_load_round_trip_gives_identical_logits(row, backbone, tmp_path):
    model, method, _ = adapted(row, backbone)
    perturb_adapters(method)
    expected = backbone.logits(model)
    save_adapter(tmp_path, model, method)
    fresh = backbone.fresh()
    loaded = load_adapter(tmp_path, fresh)
    assert list(loaded.layers) == list(method.layers)
    assert torch.equal(backbone.logits(fresh), expected)


# ----- PEFT ---------------------------------------------------------------------------------------
def peft_from_export(model, method, backbone, load_state: bool = True):
    """A live PEFT model on a fresh backbone built from our exported config, holding our exported
    tensors (``load_state=False``: PEFT's own init)."""
    from peft import PeftConfig, get_peft_model, set_peft_model_state_dict

    config, state = convert_to_peft(adapter_meta(method), adapter_checkpoint_state(model, method), task_type=backbone.peft_task_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = get_peft_model(backbone.fresh(), PeftConfig.from_peft_type(**{**config, "inference_mode": False}))
        if not load_state:
            return peft_model
        result = set_peft_model_state_dict(peft_model, state)
    assert not result.unexpected_keys, result.unexpected_keys[:5]
    return peft_model


def our_grads_as_peft(model, method) -> dict[str, torch.Tensor]:
    """Our gradients in PEFT's keys: the exporter applied to the gradient of every trainable tensor."""
    state = dict(adapter_checkpoint_state(model, method))
    for n, layer in method.layers.items():
        state.update({f"{n}.{k}": p.grad for k, p in layer.adapter_parameters()})
    for h in method.head_modules:
        state.update({f"{h}.{k}": p.grad for k, p in model.get_submodule(h).named_parameters()})
    return convert_to_peft(adapter_meta(method), state)[1]


@pytest.mark.parametrize("row,backbone", PEFT_CELLS)
def test_peft_parity_forward_and_gradients(row, backbone):
    """PEFT's model holding our tensors computes our logits and, where the export maps our trainable
    tensors one to one, our gradients."""
    from peft import get_peft_model_state_dict

    model, method, _ = adapted(row, backbone)
    perturb_adapters(method)
    peft_model = peft_from_export(model, method, backbone)
    ours_logits, theirs_logits = backbone.logits(model), backbone.logits(peft_model)
    torch.testing.assert_close(theirs_logits, ours_logits, rtol=1e-4, atol=1e-5)
    if not row.exact_peft_grads:
        return
    loss_of(ours_logits).backward()
    loss_of(theirs_logits).backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    grad_ids = {id(g) for g in grads.values()}
    # the full state (buffers such as VeRA's projections included) with the trainable tensors' gradients in place
    saved = get_peft_model_state_dict(peft_model, state_dict={**peft_model.state_dict(), **grads})
    theirs = {k: v for k, v in saved.items() if id(v) in grad_ids}
    ours = our_grads_as_peft(model, method)
    assert theirs and set(theirs) <= set(ours), sorted(set(theirs) - set(ours))[:5]
    for k, grad in theirs.items():
        # fp32 rounding differs (e.g. DoRA's norm): tolerance relative to the tensor's largest gradient
        scale = float(grad.abs().max())
        torch.testing.assert_close(grad, ours[k].view(grad.shape), rtol=1e-3, atol=1e-4 * scale + 1e-8, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("row,backbone", PEFT_CELLS)
def test_peft_export_of_a_saved_run_loads_with_identical_logits(row, backbone, tmp_path):
    from peft import PeftModel

    model, method, _ = adapted(row, backbone)
    perturb_adapters(method)
    save_adapter(tmp_path / "run" / "adapter", model, method, backbone={"name": f"tiny-{backbone.name}", "family": backbone.family})
    out = export_run(tmp_path / "run", "peft", tmp_path / "peft")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = PeftModel.from_pretrained(backbone.fresh(), str(out)).eval()
    torch.testing.assert_close(backbone.logits(peft_model), backbone.logits(model), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("row,backbone", INIT_CELLS)
def test_init_equals_peft_own_init(row, backbone):
    """Deterministic inits (VeRA's seeded projections): PEFT initialising the exported config by
    itself produces exactly our exported tensors."""
    from peft import get_peft_model_state_dict

    model, method, _ = adapted(row, backbone)
    ours = convert_to_peft(adapter_meta(method), adapter_checkpoint_state(model, method))[1]
    theirs = get_peft_model_state_dict(peft_from_export(model, method, backbone, load_state=False))
    adapter_keys = {k for k in ours if not any(k.startswith(f"base_model.model.{h}.") for h in method.head_modules)}
    assert adapter_keys and adapter_keys <= set(theirs)
    for k in adapter_keys:
        assert torch.equal(ours[k], theirs[k]), k


def peft_param_name(name: str) -> str:
    """A PEFT parameter name in our naming: no wrapper prefix, adapter name or ``modules_to_save`` copy."""
    name = name.removeprefix("base_model.model.")
    for wrapper in (".modules_to_save.default", ".default"):
        name = name.replace(wrapper, "")
    return name.removesuffix(".weight") if ".lora_" in name else name


@pytest.mark.parametrize("row,backbone", OPTIM_CELLS)
def test_optimizer_groups_equal_peft(row, backbone):
    model, method, _ = adapted(row, backbone)
    ours_opt = build_optimizer(method.param_groups(model), OPTIM, total_steps=10)["optimizer"]
    names = {id(p): n for n, p in model.named_parameters()}
    ours = sorted((g["lr"], g["weight_decay"], tuple(sorted(names[id(p)] for p in g["params"]))) for g in ours_opt.param_groups)
    peft_model = peft_from_export(model, method, backbone)
    theirs_opt = row.peft_optimizer(peft_model, OPTIM["lr"], OPTIM["weight_decay"])
    peft_names = {id(p): peft_param_name(n) for n, p in peft_model.named_parameters()}
    theirs = sorted(
        (g["lr"], g["weight_decay"], tuple(sorted(peft_names[id(p)] for p in g["params"]))) for g in theirs_opt.param_groups if g["params"]
    )
    assert ours == theirs
    assert len(ours) >= 2 and ours[0][0] != ours[-1][0]  # the ratio really splits the learning rates


# ----- the table itself ---------------------------------------------------------------------------
def test_every_method_and_init_has_a_row():
    """Rows exist by construction for every registered method x allowed init; a method that declares
    no example config (``AdapterMethod.examples``) has none, and this test names it."""
    from lora_lab.adapters import METHODS, allowed_inits
    from lora_lab.adapters.registry import init_matches

    missing = [
        f"{method} x {pattern}"
        for method in METHODS
        if not METHODS[method].reference_row  # full FT / BitFit attach no layer: tests/analysis/test_reference_methods.py
        for pattern in allowed_inits(method)
        if not any(row.adapter["method"] == method and init_matches(row.adapter["init"], pattern) for row in ROWS)
    ]
    assert not missing, f"no contract row (declare AdapterMethod.examples): {', '.join(missing)}"
    assert len({row.id for row in ROWS}) == len(ROWS)

"""``eva``: explained variance adaptation (Paischer et al. 2024, arXiv 2410.07170, section 3).

EVA initialises ``A`` with the right singular vectors of the layer's *inputs* on the task's data, i.e.
the directions that explain most of the variance of the activations the layer sees: with ``X`` the
matrix of input rows (one per data token) of a layer, centred,

    X = U S V^T,        A0 = V[:, :r]^T   ([r, in], orthonormal rows),        B0 = 0

so the adapter starts as a no-op (base untouched) and its down-projection spans the input subspace
of largest variance. The components are computed incrementally over calibration batches
(`lora_lab.adapters.incremental_pca`; the paper's incremental SVD) and a layer stops updating once
its components are stable: the cosine similarity of every component with its value one batch earlier
is at least ``tau = 0.99`` (PEFT's default); the init stops reading batches when every
layer has converged or ``adapter.init_batches`` are used (the result records how many layers
converged). Data tokens are those of the attention mask, and for language modelling also those with
a label (``labels != -100``: `lora_lab.adapters.calibration.token_mask`).

What we support of the paper's rank redistribution (section 3): none -- ``rho = 1``, every layer
keeps rank ``r`` (PEFT's ``EvaConfig(rho=1.0)``; PEFT's default ``rho = 2`` lets layers trade rank
by explained variance, which changes the adapter's shapes per layer). No whitening (PEFT's
``whiten=False``). With these settings ``A`` equals PEFT 0.21's ``initialize_lora_eva_weights`` for the
same batches to rounding (docs/algorithms/eva.md, tests/adapters/test_eva_corda_parity.py).
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.adapters.calibration import layer_inputs, register_calibrator, token_mask, token_rows
from lora_lab.adapters.incremental_pca import IncrementalPCA
from lora_lab.adapters.init import LORA_FAMILY, kaiming_init
from lora_lab.adapters.registry import register_init

#: a component has converged when its cosine similarity with the previous batch's is at least this
EVA_TAU = 0.99


@register_init("eva", families=(LORA_FAMILY,), display="EVA")
@torch.no_grad()
def eva_init(layer: nn.Module, name: str) -> None:
    """``A`` = the layer's calibrated input components, ``B = 0``; before calibration kaiming/zero."""
    stats = getattr(layer, "calibration", None)
    if stats is None:
        kaiming_init(layer, name)
        return
    layer.lora_A.copy_(stats["components"])
    layer.lora_B.zero_()


@register_calibrator("eva")
@torch.no_grad()
def eva_calibrate(layers: dict[str, nn.Module], batches, loss_of) -> tuple[dict[str, dict], dict]:
    pcas = {name: IncrementalPCA(layer.r) for name, layer in layers.items()}
    converged = dict.fromkeys(layers, False)
    mask: list = [None]

    def update(name: str, x: torch.Tensor) -> None:
        pca = pcas[name]
        if converged[name]:
            return
        rows = token_rows(x.detach(), mask[0])
        if rows.shape[0] < pca.n_components:
            return  # fewer data tokens than components in this batch: skipped (as PEFT)
        previous = None if pca.components_ is None else pca.components_.clone()
        pca.partial_fit(rows)
        if previous is not None:
            sim = torch.nn.functional.cosine_similarity(pca.components_, previous)
            converged[name] = bool(torch.all(sim >= EVA_TAU))

    with layer_inputs(layers, update):
        for batch in batches:
            mask[0] = token_mask(batch)
            loss_of(batch)
            if all(converged.values()):
                break
    missing = [name for name, pca in pcas.items() if pca.components_ is None]
    if missing:
        raise ValueError(f"eva: no calibration batch had at least r={layers[missing[0]].r} data tokens for {missing[0]}; "
                         "lower adapter.r or raise adapter.init_batches")
    stats = {name: {"components": pca.components_.to(torch.float32)} for name, pca in pcas.items()}
    return stats, {"eva_layers_converged": sum(converged.values()), "eva_layers": len(layers), "eva_tau": EVA_TAU}

"""Weight-dependent inits of the LoRA family: PiSSA (exact and randomised SVD) and OLoRA (QR).

Both split the pretrained weight ``W`` (``[out, in]``, fp32) into a principal part carried by the
adapter and a frozen residual written into the base layer (docs/algorithms/pissa.md):

    W = W_res + s * B0 A0,       W_res := W - s * B0 A0     (formed by subtraction: exact in fp32)

- ``pissa`` (Meng et al. 2024, arXiv 2404.02948, section 3, eqs. 2-5): ``W = V S U^T`` (full SVD);
  ``A0 = diag(sqrt(S_r / s)) U_r^T`` (``[r, in]``), ``B0 = V_r diag(sqrt(S_r / s))`` (``[out, r]``), so
  ``s B0 A0`` is the rank-r truncation of ``W`` for any ``alpha`` (the ``1/s`` folds the scaling in,
  as PEFT's ``pissa_init`` does).
- ``pissa_niter_<k>`` (paper section 4.3 / Table 6, "fast SVD"): the same with
  ``torch.svd_lowrank(W, q=r, niter=k)`` (Halko et al. randomised subspace iteration). Its random test
  matrix is drawn from the global torch generator, so a run seeded with ``seed_everything`` (or
  ``torch.manual_seed``) reproduces it bit for bit; the residual is saved with the adapter, so a
  reload never re-runs the randomised SVD (a PEFT pitfall, docs/algorithms/pissa.md).
- ``olora`` (Büyükakyüz 2024, arXiv 2406.01775, section 3): ``W = Q R`` (reduced QR);
  ``B0 = Q[:, :r]`` (orthonormal columns), ``A0 = R[:r, :]``; the scaling is *not* folded in.
  Deliberate difference from PEFT 0.21 ``olora_init``: we factorise the ``[out, in]`` orientation for
  GPT-2 ``Conv1D`` too (PEFT factorises the stored ``[in, out]`` matrix, which gives wrongly shaped
  factors unless ``in == out``); for ``nn.Linear`` the two agree exactly.

The residual is cast back to the base dtype; only fp32/fp16/bf16 bases are accepted (a quantized
residual would break ``W_res + s B0 A0 = W``; quantise the residual afterwards, QPiSSA-style).
``(A0, B0)`` are kept as buffers (``lora_A0``, ``lora_B0``) so that the trained adapter can be exported
as plain LoRA of rank ``2r`` on the *original* base: ``s (B A - B0 A0) = s [B, -B0] [A; A0]``.
The layer's ``disable()`` then gives the *residual* model, not the original one.
"""

from __future__ import annotations

import torch
from torch import nn

from lora_lab.adapters.init import LORA_FAMILY
from lora_lab.adapters.registry import register_init
from lora_lab.errors import ConfigError

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _checked_weight(layer: nn.Module, name: str) -> torch.Tensor:
    """The base weight as fp32 ``[out, in]`` after checking dtype and rank; raises `ConfigError`."""
    w = layer.base_layer.weight
    if w.dtype not in FLOAT_DTYPES:
        raise ConfigError(
            "adapter.init",
            f"{name!r} needs a float32/float16/bfloat16 base weight, got {w.dtype}; initialise on the "
            "full-precision model and quantise the residual afterwards, or use init 'kaiming' or 'gaussian'",
        )
    limit = min(layer.in_features, layer.out_features)
    if layer.r > limit:
        raise ConfigError("adapter.r", f"{layer.r} exceeds min(in, out) = {limit} of a {layer.out_features}x{layer.in_features} weight, which init {name!r} factorises")
    return layer.base_weight().to(torch.float32)


@torch.no_grad()
def _install(layer: nn.Module, weight: torch.Tensor, a0: torch.Tensor, b0: torch.Tensor) -> None:
    """Set ``A = A0``, ``B = B0``, keep them as buffers and write ``W - s B0 A0`` into the base."""
    layer.lora_A.copy_(a0)
    layer.lora_B.copy_(b0)
    layer.lora_A0.copy_(a0)
    layer.lora_B0.copy_(b0)
    layer.set_base_weight(weight - layer.scaling * (b0 @ a0))


@register_init("pissa", families=(LORA_FAMILY,), mutates_base=True, display="PiSSA")
@torch.no_grad()
def pissa_init(layer: nn.Module, name: str) -> None:
    weight = _checked_weight(layer, name)
    if name == "pissa":
        v, s, uh = torch.linalg.svd(weight, full_matrices=False)
        v_r, s_r, uh_r = v[:, : layer.r], s[: layer.r], uh[: layer.r]
    else:
        niter = int(name[len("pissa_niter_") :])
        v_r, s_r, u_r = torch.svd_lowrank(weight, q=layer.r, niter=niter)
        uh_r = u_r.T
    root = torch.sqrt(s_r / layer.scaling)
    _install(layer, weight, root[:, None] * uh_r, v_r * root[None, :])


register_init("pissa_niter_*", families=(LORA_FAMILY,), mutates_base=True, display="PiSSA", example="pissa_niter_2")(pissa_init)


@register_init("olora", families=(LORA_FAMILY,), mutates_base=True, display="OLoRA")
@torch.no_grad()
def olora_init(layer: nn.Module, name: str) -> None:
    weight = _checked_weight(layer, name)
    q, r = torch.linalg.qr(weight)
    _install(layer, weight, r[: layer.r].contiguous(), q[:, : layer.r].contiguous())

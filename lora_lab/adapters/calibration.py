"""Data-driven inits: calibration batches read once, after the adapter is attached, before training.

``eva``, ``corda``/``corda_kpm`` and ``lora_ga`` need statistics of the task's data (layer-input
principal components, input covariances, full-weight gradients). Each registers, besides its init
function (`lora_lab.adapters.registry.register_init`), a *calibrator* here:

    calibrator(layers, batches, loss_of) -> (stats, summary)

``layers`` maps module names to the attached LoRA-family layers (at this point each holds the init's
placeholder: kaiming ``A``, ``B = 0``, base untouched, so the model computes the base model);
``batches`` yields at most ``adapter.init_batches`` training batches; ``loss_of(batch)`` runs the model
on one batch (moved to its device) and returns the task loss; ``stats[name]`` is what the init
function of that layer reads (``layer.calibration``) when `calibrate` re-runs the layer's init
(``reset_from_base``: DoRA's magnitude follows the new ``A``, ``B`` and residual). ``summary`` goes to
``result.json`` (``method_summary.init``) with the number of batches and examples actually read.

The caller (`lora_lab.models.module.AdapterModule.configure_model`) puts the model in eval mode (no
dropout) and runs this before quantising the base; `calibrate` forks the torch RNG so that the
calibration leaves the generator -- and so everything after it -- as it found it. Which batches are read
is decided by the trial (`lora_lab.tasks.loaders.calibration_batches`: the training set and collate,
shuffled by its own seeded generator); a resumed run does not calibrate again (its checkpoint holds
the result). Notes: docs/algorithms/README.md.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from lora_lab.adapters.registry import init_matches

LossOf = Callable[[dict], torch.Tensor]
Calibrator = Callable[[dict[str, nn.Module], Iterable[dict], LossOf], tuple[dict[str, dict], dict]]
CALIBRATORS: dict[str, Calibrator] = {}


def register_calibrator(name: str) -> Callable[[Calibrator], Calibrator]:
    """Register the calibrator of the data-driven init ``name``."""

    def wrap(fn: Calibrator) -> Calibrator:
        CALIBRATORS[name] = fn
        return fn

    return wrap


def _calibrator(init: str) -> Calibrator | None:
    return next((fn for key, fn in CALIBRATORS.items() if init_matches(init, key)), None)


def calibrated_init_names() -> list[str]:
    return sorted(CALIBRATORS)


def needs_calibration(init: str) -> bool:
    return _calibrator(init) is not None


def token_mask(batch: dict) -> torch.Tensor | None:
    """Which tokens of ``batch`` are data: ``attention_mask``, and where ``labels`` label every token
    (language modelling) also ``labels != -100`` (PEFT's EVA default ``use_label_mask``)."""
    mask = batch.get("attention_mask")
    if mask is None:
        return None
    mask = mask.bool()
    labels = batch.get("labels")
    if isinstance(labels, torch.Tensor) and labels.shape == mask.shape:
        mask = mask & (labels != -100)
    return mask


def token_rows(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The rows ``[n, in]`` of a layer input ``x`` (``[batch, seq, in]``) at the data tokens, in
    (example, position) order; every row when ``mask`` does not match ``x`` (e.g. a decoder layer)."""
    if mask is not None and x.dim() == 3 and tuple(mask.shape) == tuple(x.shape[:2]):
        return x[mask.to(x.device)]
    return x.reshape(-1, x.shape[-1])


@contextlib.contextmanager
def layer_inputs(layers: dict[str, nn.Module], on_input: Callable[[str, torch.Tensor], None]) -> Iterator[None]:
    """Call ``on_input(name, x)`` with the input of each layer in every forward inside the block."""
    handles = [layer.register_forward_pre_hook(lambda _m, args, name=name: on_input(name, args[0])) for name, layer in layers.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class CountedBatches:
    """An iterator over batches that counts the batches and examples taken from it."""

    def __init__(self, batches: Iterable[dict]):
        self._it, self.batches, self.examples = iter(batches), 0, 0

    def __iter__(self) -> "CountedBatches":
        return self

    def __next__(self) -> dict:
        batch = next(self._it)
        self.batches += 1
        self.examples += int(batch["input_ids"].shape[0])
        return batch


def calibrate(method, batches: Iterable[dict], loss_of: LossOf) -> dict:
    """Run the calibrator of ``method.config.init`` on ``batches`` and re-initialise every layer from
    its statistics; returns the summary for ``result.json``."""
    init = method.config.init
    calibrator = _calibrator(init)
    if calibrator is None:
        raise ValueError(f"init {init!r} is not data-driven")
    counted = CountedBatches(batches)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        stats, summary = calibrator(method.layers, counted, loss_of)
    if counted.batches == 0:
        raise ValueError(f"init {init!r} read no calibration batch (an empty training set?)")
    for name, layer in method.layers.items():
        layer.calibration = stats[name]
        try:
            layer.reset_from_base()
        finally:
            del layer.calibration
    return {"name": init, "calibration_batches": counted.batches, "calibration_examples": counted.examples, **summary}

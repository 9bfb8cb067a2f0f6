"""`AdapterModule`: the LightningModule every task family shares.

It receives the trial's parsed configs (`BackboneConfig`, `AdapterConfig`, `OptimConfig`: the objects
`lora_lab.config.trial_config.parse` made at the entry point, never parsed again; a plain dict, as a test or a
notebook may pass, is parsed once here), keeps them as plain dicts in its hparams (never ``nn.Module``
objects, so hparams and checkpoints stay small and picklable), builds the backbone and attaches the adapter in `configure_model`, and drives every
adapter method through the same two hooks so no user has to remember a call:

- training loss = task loss + ``method.regularization_loss()`` (logged as ``train/reg_loss``);
- ``method.on_optimizer_step(step, total_steps)`` runs inside `optimizer_step`, right after the real
  ``optimizer.step()``: once per accumulation window, with the accumulated (and clipped) gradients
  still present; ``step`` is the 0-based index of that optimizer step, ``total_steps`` is
  ``trainer.estimated_stepping_batches``.

A quantised base (``backbone.quantize``) is quantised after the adapter is attached and initialised on
the full-precision weights (QLoRA / QPiSSA, `lora_lab.adapters.quant`), with the k-bit preparation.

A data-driven init (``eva``, ``corda``, ``lora_ga``: `lora_lab.adapters.calibration`) reads its
calibration batches in `configure_model`, right after the adapter is attached (before quantisation),
from ``calibration_batches()``, which the trial sets for a fresh run only: a run resuming from its
checkpoint gets the init's result back from it (trained state, frozen state and ``init_summary``) and
never calibrates again. Fitting such an init without calibration batches and without a checkpoint is
an error (`on_fit_start`), never a silent placeholder init.

Only adapter and head parameters are optimised. Checkpoints are adapter-only: ``state_dict`` entries
of the frozen backbone are dropped in `on_save_checkpoint` and method-level state (AdaLoRA's
allocator) rides along. What PiSSA/OLoRA fix at initialisation (the residual base weight, ``A0``,
``B0``: `frozen_state`) is part of the saved adapter but not of ``last.ckpt`` or of the best-state
copies: `lora_lab.resume.checkpoint` writes it once per run next to ``last.ckpt``. Trainable heads
are kept in fp32 (`lora_lab.models.fp32_heads`).
"""

from __future__ import annotations

import dataclasses
import math

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device

from lora_lab.adapters import AdapterConfig, AttachReport, build_method, parse_config
from lora_lab.adapters.base import is_quantized_base_key
from lora_lab.adapters.calibration import calibrate, needs_calibration
from lora_lab.adapters.io import adapter_checkpoint_state, load_checkpoint_state
from lora_lab.adapters.quant_model import quantize_for_training
from lora_lab.models.backbones import BackboneConfig, build_backbone, head_modules_for, parse_backbone_config
from lora_lab.models.fp32_heads import keep_heads_fp32
from lora_lab.models.optim import OptimConfig, build_optimizer, parse_optim



def step_loss_tensor(outputs):
    """The training loss of the batch that just ended, from ``training_step``'s output, as the
    (detached) tensor it is: reading it on the host is a device sync, so callers read it only when
    they print or log it."""
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return loss.detach() if hasattr(loss, "detach") else loss


def step_loss(outputs) -> float | None:
    """`step_loss_tensor` read on the host (one device sync)."""
    loss = step_loss_tensor(outputs)
    return float(loss) if loss is not None else None


def is_better(value: float, best: float | None) -> bool:
    """Does an evaluation scoring ``value`` replace the selected one (``best``; None: none yet)? Higher
    is better; an undefined score (NaN: e.g. Pearson's r of constant predictions) never beats a number,
    and a number always beats NaN."""
    if best is None or math.isnan(best):
        return best is None or not math.isnan(value)
    return not math.isnan(value) and value > best

class AdapterModule(L.LightningModule):
    model_kind: str = "classification"  # which Auto class builds the backbone: classification, causal_lm, seq2seq

    def __init__(self, backbone: BackboneConfig | dict, adapter: AdapterConfig | dict, optim: OptimConfig | dict, task,
                 num_labels: int | None = None, pad_token_id: int | None = None):
        super().__init__()
        self.backbone_cfg = backbone if isinstance(backbone, BackboneConfig) else parse_backbone_config(backbone)
        self.adapter_cfg = adapter if isinstance(adapter, AdapterConfig) else parse_config(adapter)
        self.optim_cfg = optim if isinstance(optim, OptimConfig) else parse_optim(optim)
        self.task_cfg = task  # the trial's parsed `TaskConfig` (a test may pass the plain dict)
        self.save_hyperparameters(ignore=["backbone", "adapter", "optim", "task"])
        self.hparams.update(backbone=dataclasses.asdict(self.backbone_cfg), adapter=self.adapter_cfg.to_dict(), optim=self.optim_cfg.to_dict(),
                            task=dict(task) if isinstance(task, dict) else dataclasses.asdict(task))
        self.model: torch.nn.Module | None = None
        self.method = None
        self.report: AttachReport | None = None
        self.quantization: dict | None = None  # `quantize_for_training`'s record of a quantised base
        self.optimizer_steps_seen = 0  # hook calls in this process (tests use it)
        self.curve: list[dict] = []  # one point per validation
        self.best: dict | None = None  # the selected evaluation
        self.best_state: dict | None = None  # adapter state at that evaluation
        self.strict_loading = False  # checkpoints are adapter-only
        #: for a data-driven init: a callable returning the calibration batches (set by the trial on a fresh run)
        self.calibration_batches = None
        self.init_summary: dict | None = None  # what the data-driven init read (result.json: method_summary.init)

    # ----- building --------------------------------------------------------------------------
    def build_backbone(self) -> torch.nn.Module:
        return build_backbone(self.backbone_cfg, self.model_kind, self.hparams.num_labels, self.hparams.pad_token_id)

    def head_modules(self, model: torch.nn.Module) -> list[str]:
        return head_modules_for(model, self.model_kind)

    def configure_model(self) -> None:
        if self.model is not None:
            return
        model = self.build_backbone()
        self.method = build_method(self.adapter_cfg)
        heads = self.head_modules(model)
        self.report = self.method.attach(model, getattr(model.config, "model_type", None), heads)
        if needs_calibration(self.adapter_cfg.init) and self.calibration_batches is not None:
            self.init_summary = self.calibrate_init(model)
        self.quantization = quantize_for_training(model, self.method, self.backbone_cfg, heads)
        keep_heads_fp32(model, self.report.head_modules)  # trained like the adapters: fp32 master weights
        model.train()
        self.model = model
        # constant buffers (PiSSA/OLoRA's A0, B0) are identical on every rank: DDP need not broadcast them
        self._ddp_params_and_buffers_to_ignore = [f"model.{k}" for k in self.frozen_state() if ".base_layer.weight" not in k]

    def calibrate_init(self, model: torch.nn.Module) -> dict:
        """Run the data-driven init on ``calibration_batches()`` (model in eval mode, loss = `task_loss`)."""
        device = next(model.parameters()).device
        self.model = model  # task_loss reads self.model
        model.eval()
        try:
            return calibrate(self.method, self.calibration_batches(), lambda batch: self.task_loss(move_data_to_device(batch, device)))
        finally:
            self.model = None

    # ----- training hooks shared by every method ----------------------------------------------
    def task_loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.task_loss(batch)
        reg = self.method.regularization_loss()
        bs = batch["input_ids"].shape[0]
        self.log("train/task_loss", loss.detach(), batch_size=bs)
        if reg is not None:
            self.log("train/reg_loss", reg.detach(), batch_size=bs)
            loss = loss + reg
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        return loss

    def on_fit_start(self) -> None:
        if needs_calibration(self.adapter_cfg.init) and self.init_summary is None and self.trainer.ckpt_path is None:
            raise RuntimeError(f"init {self.adapter_cfg.init!r} needs calibration batches: set module.calibration_batches before fitting")
        self.method.check_schedule(self.total_optimizer_steps())

    def total_optimizer_steps(self) -> int:
        """T, the number of optimizer steps of the fit (cached: a later validate/test keeps it)."""
        if getattr(self, "_total_steps", None) is None:
            total = self.trainer.estimated_stepping_batches
            if not math.isfinite(total):
                raise ValueError("set trainer.max_steps or trainer.max_epochs: the total number of optimizer steps must be known")
            self._total_steps = int(total)
        return self._total_steps

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        optimizer.step(closure=optimizer_closure)
        # Lightning counts this step as completed only after optimizer_step returns, so global_step
        # is still the 0-based index of the step just taken (tests pin this); the accumulated,
        # clipped gradients are still in .grad (zero_grad comes with the next step).
        self.method.on_optimizer_step(self.trainer.global_step, self.total_optimizer_steps())
        self.optimizer_steps_seen += 1

    def configure_optimizers(self):
        return build_optimizer(self.method.param_groups(self.model), self.optim_cfg, self.total_optimizer_steps())

    # ----- evaluation loop shared by the task families ----------------------------------------
    # A subclass sets ``self.spec`` (a `TaskSpec`) and implements `_eval_step` (update the split's
    # metrics with one batch), `split_values` (the split's ``{"<split>/<metric>": float}``) and
    # `split_metrics` (the metric objects to reset after reading them).
    def _eval_step(self, batch: dict, split: str) -> None:
        raise NotImplementedError

    def split_values(self, split: str) -> dict[str, float]:
        raise NotImplementedError

    def split_metrics(self, split: str) -> list:
        raise NotImplementedError

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, self.spec.eval_splits[dataloader_idx])

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _compute(self, split: str) -> dict[str, float]:
        """Read the split's metrics (DDP-synchronised by torchmetrics) and reset them."""
        values = self.split_values(split)
        # states re-created inside trainer.validate's inference mode would be inference tensors,
        # which the next fit-time update could not modify in place
        with torch.inference_mode(False):
            for metric in self.split_metrics(split):
                metric.reset()
        return values

    def on_validation_epoch_end(self) -> None:
        values = {}
        for split in self.spec.eval_splits:
            values.update(self._compute(split))
        self.log_dict(values, sync_dist=False)
        if not self.trainer.sanity_checking:
            self.on_evaluation(values)

    def on_evaluation(self, values: dict[str, float]) -> None:
        """One finished validation (not the sanity check): record it for model selection."""
        self.record_evaluation(values, self.spec.primary_key)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self._compute("test"), sync_dist=False)

    # ----- model selection on validation -------------------------------------------------------
    def record_evaluation(self, values: dict[str, float], primary_key: str) -> dict:
        """Append a validation point to the curve; keep the adapter state if it is the best so far
        among the evaluations the method calls `selectable` (selection on validation, never test)."""
        step = int(self.trainer.global_step)
        point = {"step": step, "epoch": int(self.current_epoch), **values}
        point["selectable"] = self.method.selectable(step, self.total_optimizer_steps())
        self.curve.append(point)
        if point["selectable"] and is_better(values[primary_key], None if self.best is None else self.best[primary_key]):
            self.best = point
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.trained_state().items()}
        return point

    def restore_best(self) -> None:
        """Load the adapter state of the best validation evaluation (for testing)."""
        if self.best_state is not None:
            load_checkpoint_state(self.model, self.method, self.best_checkpoint_state())

    def best_checkpoint_state(self) -> dict[str, torch.Tensor] | None:
        """The complete adapter checkpoint state at the best evaluation (best copy + frozen state)."""
        return None if self.best_state is None else {**self.frozen_state(), **self.best_state}

    # ----- what changes in training vs what is fixed at initialisation -----------------------------
    def frozen_state(self) -> dict[str, torch.Tensor]:
        """Adapter-state entries fixed at initialisation (PiSSA/OLoRA: the residual base weight, A0, B0):
        written once per run (`lora_lab.resume.frozen_state`), never into per-step state."""
        return {f"{name}.{k}": v for name, layer in self.method.layers.items() for k, v in layer.adapter_state().items()
                if k in layer.frozen_state_names()}

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The adapter checkpoint state without `frozen_state`: what training changes."""
        frozen = set(self.frozen_state())
        return {k: v for k, v in adapter_checkpoint_state(self.model, self.method).items() if k not in frozen}

    def load_frozen_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put a saved `frozen_state` back (through the layers' own loading: a quantised residual from its stored form)."""
        # a quantised residual's stored form is absent from files written before it was kept (then re-quantised)
        expected = {k for k in self.frozen_state() if not is_quantized_base_key(k)}
        given = {k for k in state if not is_quantized_base_key(k)}
        if given != expected:
            raise KeyError(f"frozen adapter state mismatch: missing {sorted(expected - given)[:5]}, unexpected {sorted(given - expected)[:5]}")
        load_checkpoint_state(self.model, self.method, {**self.trained_state(), **state})

    # ----- adapter-only checkpoints ---------------------------------------------------------------
    def adapter_state_keys(self) -> set[str]:
        """``state_dict`` keys a checkpoint keeps: the trained adapter and head tensors."""
        return {f"model.{k}" for k in self.trained_state()} - {f"model.__method__.{k}" for k in self.method.state_dict()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        keep = self.adapter_state_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["adapter_method_state"] = {k: v.detach().cpu().clone() for k, v in self.method.state_dict().items()}
        checkpoint["lora_lab_eval"] = {"curve": self.curve, "best": self.best, "best_state": self.best_state}
        checkpoint["lora_lab_init"] = self.init_summary  # a resumed run reports the calibration it did not redo
        # RNG states (every rank's) travel in the checkpoint through lora_lab.resume.rng.RngState

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        missing = self.adapter_state_keys() - set(checkpoint["state_dict"])
        if missing:
            raise KeyError(f"checkpoint lacks adapter tensors: {sorted(missing)[:5]} ...")
        self.method.load_state_dict(checkpoint.get("adapter_method_state", {}))
        saved = checkpoint.get("lora_lab_eval", {})
        self.curve, self.best, self.best_state = saved.get("curve", []), saved.get("best"), saved.get("best_state")
        self.init_summary = checkpoint.get("lora_lab_init")

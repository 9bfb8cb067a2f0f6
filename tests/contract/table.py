"""The contract table, generated from the registries: one row per registered method x init (and per
extra example config); every row runs every generic test in `tests.contract.test_contract` on every
backbone of `tests.contract.backbones`.

Rows come from `lora_lab.adapters.METHODS` and the init registry: each method's first example config
(``AdapterMethod.examples``) with every init it accepts (``allowed_inits``; a ``prefix*`` pattern with its
registered ``example`` name), and each further example with the method's default init. A new method or
init therefore gets identity-at-init, declared-parameters-only, merge/unmerge, save/load, closed-form
count, PEFT parity/export (when it registers a PEFT exporter) and determinism with no edit here; a
method without examples has no rows and `test_contract.test_every_method_and_init_has_a_row` fails.

Tiers: the default tier runs each method with its default init and each init with the first method of
its family (by ``table_order``); the rest of the cross product is marked slow (run by `bash .ci/test --all`).
What only PEFT's side knows (its LoRA+ optimizer, which inits PEFT draws identically) is keyed by
method below; a method without a PEFT counterpart needs nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from lora_lab.adapters import METHODS
from lora_lab.adapters.config import knob_defaults
from lora_lab.adapters.registry import INITS


def loraplus_peft_optimizer(adapter: dict) -> Callable:
    """PEFT's LoRA+ optimizer for a PEFT model: ``fn(peft_model, lr, weight_decay) -> optimizer``."""

    def build(peft_model, lr: float, weight_decay: float):
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(
            peft_model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=adapter["loraplus_lr_ratio"], loraplus_weight_decay=weight_decay
        )

    return build


#: method -> PEFT's own optimizer for it (the method shapes the optimizer)
PEFT_OPTIMIZERS: dict[str, Callable[[dict], Callable]] = {"loraplus": loraplus_peft_optimizer}
#: (method, init) pairs whose init is deterministic and equals PEFT's own init of the exported config
PEFT_INIT_EQUAL = {("vera", "kaiming")}
#: row id -> backbones on which its cells are marked slow (beyond the tier rule)
SLOW_ON = {"lora-pissa_niter_2": ("llama", "t5")}


@dataclass(frozen=True)
class Row:
    id: str
    adapter: dict  # raw adapter knobs (method, init, ...); targets come from the table
    identity_at_init: bool = True  # the method promises: adapted model == base model at init
    exact_peft_grads: bool = True  # the PEFT export maps our trainable tensors one to one (no rank-2r conversion)
    peft_optimizer: Callable | None = None  # PEFT's optimizer for this method, when it shapes the optimizer
    peft_init_equal: bool = False  # the init is deterministic and equals PEFT's own init of the exported config
    slow: bool = False  # every cell of the row is marked slow
    slow_on: tuple[str, ...] = field(default=())  # backbones on which this row's cells are marked slow


def _suffix(example: dict, first: dict) -> str:
    """What sets an extra example apart from the first, for its row id (``rslora``, ``r8`` ...)."""
    return "-".join(k if v is True else f"{k}{v}" for k, v in example.items() if first.get(k) != v)


def rows_of(method: str) -> list[Row]:
    """The rows of one registered method (none when it declares no examples)."""
    cls = METHODS[method]
    if not cls.examples:
        return []
    config_cls = cls.config_cls
    family, default_init = config_cls.family(), knob_defaults(config_cls)["init"]
    first_of_family = min((c for c in METHODS.values() if c.config_cls.family() == family), key=lambda c: (c.table_order, c.name)).name
    plan = [(cls.examples[0], pattern) for pattern in config_cls.allowed_inits()]
    plan += [(example, default_init) for example in cls.examples[1:]]
    rows = []
    for example, pattern in plan:
        spec = INITS[(family, pattern)]
        init = spec.example_name
        suffix = _suffix(example, cls.examples[0])
        row_id = f"{method}-{init}" + (f"-{suffix}" if suffix else "")
        mutates = spec.mutates_base
        rows.append(
            Row(
                row_id,
                {"method": method, **example, "init": init},
                identity_at_init=cls.identity_at_init,
                exact_peft_grads=not mutates,
                peft_optimizer=PEFT_OPTIMIZERS[method](example) if method in PEFT_OPTIMIZERS and not mutates else None,
                peft_init_equal=(method, init) in PEFT_INIT_EQUAL,
                slow=not (init == default_init or method == first_of_family),
                slow_on=SLOW_ON.get(row_id, ()),
            )
        )
    return rows


ROWS = [row for method in sorted(METHODS, key=lambda m: (METHODS[m].table_order, m)) for row in rows_of(method)]

#: PEFT parity/export cells on these backbones are marked slow (PEFT's LLaMA and T5 wrappers cost ~0.5 s
#: per cell); the default tier checks PEFT on BERT (Linear) and GPT-2 (Conv1D)
PEFT_SLOW_BACKBONES = ("llama", "t5")

#: adapted modules of every row: attention and MLP, so that layers of different shapes are adapted
TARGETS = "attn_mlp"

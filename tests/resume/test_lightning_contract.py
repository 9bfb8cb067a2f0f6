"""Lightning internals the resume path leans on; a Lightning upgrade that moves them fails here first
(the bit-exact resume tests say what breaks)."""

from lightning.pytorch import Trainer
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop


def test_validation_schedule_and_loader_state_hooks_exist():
    assert callable(getattr(_TrainingEpochLoop, "_should_check_val_fx", None))
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert hasattr(trainer.fit_loop, "_data_fetcher") and hasattr(trainer.fit_loop, "_combined_loader_states_to_load")
    assert hasattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch")

"""RNG states travel in checkpoints: restoring them replays the same random draws, and the stored
form loads with torch's safe ``weights_only`` unpickler."""

import io
import random

import numpy as np
import torch

from lora_lab.resume.rng import RngState


def draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)], torch.nn.functional.dropout(torch.ones(8), 0.5).tolist()


def test_state_round_trip_through_a_checkpoint_replays_draws():
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    draws()
    buf = io.BytesIO()
    torch.save({"callbacks": {"RngState": RngState().state_dict()}}, buf)
    expected = draws()
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    buf.seek(0)
    RngState().load_state_dict(torch.load(buf, weights_only=True)["callbacks"]["RngState"])
    assert draws() == expected


def test_each_rank_gets_its_own_states_back():
    torch.manual_seed(5)
    rank0 = RngState().state_dict()["ranks"][0]
    expected_rank0 = torch.rand(2).tolist()
    torch.manual_seed(6)
    rank1 = RngState().state_dict()["ranks"][0]
    expected_rank1 = torch.rand(2).tolist()
    saved = {"ranks": [rank0, rank1]}  # what a 2-rank job gathers
    for rank, expected in ((0, expected_rank0), (1, expected_rank1)):
        callback = RngState()
        callback.rank = rank
        callback.load_state_dict(saved)
        assert torch.rand(2).tolist() == expected

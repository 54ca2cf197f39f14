"""Data-parallel training (core/distributed_train.py) against one process, on gloo with 2 ranks."""
from __future__ import annotations

import torch
import torch.multiprocessing as mp

from distributed_helpers import CASES, equivalence_rank, single_process_reference

WORLD = 2


def _max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_two_ranks_equal_one_process_and_a_gather_without_gradients_does_not(tmp_path):
    mp.spawn(equivalence_rank, args=(WORLD, str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for name, (changes, with_grad) in CASES.items():
        got, other_rank = ranks[0][name], ranks[1][name]
        assert torch.equal(got["indices"], other_rank["indices"])
        want = single_process_reference(got["indices"], changes)
        # every rank ends the step with the same weights (DDP averaged the same gradients)
        assert _max_diff(got["weights"], other_rank["weights"]) == 0.0
        loss_diff = max(abs(got["losses"][k] - want["losses"][k]) for k in want["losses"])
        grad_diff = _max_diff(got["grads"], want["grads"])
        weight_diff = _max_diff(got["weights"], want["weights"])
        assert loss_diff < 1e-5, (name, loss_diff)  # the loss value agrees even for the wrong gather
        if with_grad:
            assert grad_diff < 1e-5, (name, grad_diff)
            assert weight_diff < 1e-5, (name, weight_diff)
        else:  # the negative control: without gradients through the gather, wrong encoder gradients
            assert grad_diff > 1e-3, (name, grad_diff)
            assert weight_diff > 1e-4, (name, weight_diff)

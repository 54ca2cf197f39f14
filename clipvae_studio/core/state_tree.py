"""Walking nested state (state_dicts, optimiser states): dicts and lists of tensors and plain values."""
from __future__ import annotations

from typing import Callable

import torch


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], state):
    """The same structure with fn applied to every tensor; other values are shared as they are."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: map_tensors(fn, v) for k, v in state.items()}
    if isinstance(state, list):
        return [map_tensors(fn, v) for v in state]
    return state

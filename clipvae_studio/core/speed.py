"""Speed settings of the training loop: the optimiser, CPU threads, and cheap weight copies.

Kept apart from the loop so the loop reads as what it does, not how it is made fast.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import torch

from .state_tree import map_tensors

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_TUNED = False


def make_adamw(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (one call per step for every parameter) where this torch and
    device have one, else the multi-tensor ("foreach") path; both compute the same update as the
    default per-parameter loop, which costs ~2 ms of Python per step on the reference model."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


_RESERVED_CORES = 0  # cores kept free for an interactive front end (the GUI sets 1)


def reserve_cores(count: int) -> None:
    """Leave `count` cores to the caller's own threads (the GUI thread) in auto_threads()."""
    global _RESERVED_CORES
    _RESERVED_CORES = max(0, int(count))


def auto_threads() -> int:
    """Intra-op threads for training on the CPU: every core headless, one fewer when a GUI has
    reserved one for itself, and never more than four (matrices this small gain nothing more)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores - _RESERVED_CORES, 4))


def apply_thread_policy(device: torch.device, num_threads: int | None) -> int:
    """Set torch's intra-op threads for a CPU run (None = auto_threads(), 0 = leave as is);
    returns the count in effect. On a GPU the CPU only launches kernels: nothing is changed.

    Why it matters: with OpenMP, a spare worker thread spins while waiting for the next op;
    on a 2-core machine it takes the core the GUI (or any other process) needs, and a busy
    machine can slow a 2-thread step by 10x while a 1-thread step barely notices."""
    if device.type != "cpu" or num_threads == 0:
        return torch.get_num_threads()
    wanted = auto_threads() if num_threads is None else int(num_threads)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MiB for reuse instead of handing them
    back to the kernel. A training step allocates and frees the same few-hundred-KiB tensors
    over and over (torch's CPU allocator does not cache); by default each comes from a fresh
    mmap, whose pages fault in one by one: at batch 1,024 that was ~7,000 page faults and about
    a quarter of the step. Process-wide, Linux/glibc only, once; set CLIPVAE_STUDIO_MALLOC=default
    to leave malloc alone. Returns whether the setting is in effect."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("CLIPVAE_STUDIO_MALLOC") == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1  # 32 MiB is glibc's ceiling for this setting
    ok &= mallopt(_M_TRIM_THRESHOLD, 128 << 20) == 1  # hand memory back only past 128 MiB free
    ok &= mallopt(_M_TOP_PAD, 16 << 20) == 1
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED


def copy_state(dst, src):
    """A copy of `src` (a nested dict/list of tensors and plain values) that reuses the tensors
    of `dst`, an earlier copy of the same structure, filled in place by one multi-tensor copy.
    Falls back to a fresh clone when the structure changed. Saves allocating and freeing a
    roll-back copy of every weight and optimiser moment every few steps."""
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        out = _reuse(dst, src, pairs)
    except _Mismatch:
        return clone_state(src)
    if pairs:
        with torch.no_grad():
            torch._foreach_copy_([d for d, _ in pairs], [s for _, s in pairs])
    return out


class _Mismatch(Exception):
    pass


def _reuse(dst, src, pairs):
    if isinstance(src, torch.Tensor):
        if not (isinstance(dst, torch.Tensor) and dst.shape == src.shape and dst.dtype == src.dtype
                and dst.device == src.device):
            raise _Mismatch
        pairs.append((dst, src.detach()))
        return dst
    if isinstance(src, dict):
        if not (isinstance(dst, dict) and dst.keys() == src.keys()):
            raise _Mismatch
        return {k: _reuse(dst[k], v, pairs) for k, v in src.items()}
    if isinstance(src, list):
        if not (isinstance(dst, list) and len(dst) == len(src)):
            raise _Mismatch
        return [_reuse(d, v, pairs) for d, v in zip(dst, src)]
    return src  # plain values (learning rate, betas, ...) are immutable: share them


def clone_state(state):
    return map_tensors(lambda t: t.detach().clone(), state)


def all_finite(tensors) -> bool:
    """One reduction (and one device sync) for the whole list instead of one per tensor."""
    tensors = [t.detach() for t in tensors]
    if not tensors:
        return True
    norms = torch._foreach_norm(tensors, float("inf"))
    return bool(torch.isfinite(torch.stack(norms)).all())

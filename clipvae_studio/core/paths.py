"""Per-user folders: settings, recovery checkpoints, download cache.

CLIPVAE_STUDIO_HOME moves all of them (the test suite points it at a temporary folder).
"""
from __future__ import annotations

import os
from pathlib import Path


def studio_home() -> Path:
    override = os.environ.get("CLIPVAE_STUDIO_HOME")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "clipvae-studio"


def recovery_dir() -> Path:
    path = studio_home() / "recovery"
    path.mkdir(parents=True, exist_ok=True)
    return path

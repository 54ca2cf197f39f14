"""Where the files of resources/ live: next to the package in a source checkout,
or inside the installed package (the wheel maps resources/ to clipvae_studio/resources)."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def resource_root() -> Path:
    installed = _PACKAGE / "resources"
    return installed if installed.is_dir() else _PACKAGE.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resource_root().joinpath(*parts)

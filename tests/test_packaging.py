"""Packaging: every sub-package is listed for the wheel, and resources ship inside it."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "clipvae_studio").rglob("__init__.py")}
    assert found | {"clipvae_studio.resources"} == listed
    assert config["tool"]["setuptools"]["package-dir"]["clipvae_studio.resources"] == "resources"
    assert config["project"]["scripts"]["clipvae-studio"] == "clipvae_studio.cli:main"


def test_resources_exist():
    from clipvae_studio.core.resources import resource_path

    assert resource_path("data", "mnist5k.npz").is_file()


def test_core_never_imports_qt():
    for path in (ROOT / "clipvae_studio" / "core").rglob("*.py"):
        text = path.read_text()
        for qt in ("PySide6", "pyqtgraph", "shiboken6"):
            assert f"import {qt}" not in text and f"from {qt}" not in text, f"{path.name} imports {qt}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 main.py test" in readme and "python3 main.py test" in ci

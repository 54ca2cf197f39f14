"""Packaging: every sub-package is listed for the wheel, and resources ship inside it."""
import os
import subprocess
import sys
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


def shell_commands(text: str) -> list[str]:
    """The commands a shell script or a ```bash block runs, comments and blank lines dropped."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def readme_quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return shell_commands(section.split("```bash", 1)[1].split("```", 1)[0])


def test_ci_runs_the_readme_test_command_verbatim():
    quick_start = readme_quick_start()
    assert quick_start == ["python3 main.py", "python3 main.py test"]
    ci = shell_commands((ROOT / ".ci" / "run").read_text())
    # .ci/run only prepares the shell and moves to the repository root; then it runs the README's command
    assert ci[:-1] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."'] and ci[-1] == quick_start[1]
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert pytest_options["testpaths"] == ["tests"]  # so the bare `main.py test` runs tests/


def test_main_py_test_runs_pytest_over_this_checkouts_tests(tmp_path):
    """`main.py test ARGS` is pytest ARGS run from the repository root, whatever the caller's folder:
    here it collects this file by its path relative to the root, from another folder."""
    env = dict(os.environ, CLIPVAE_NO_BOOTSTRAP="1")
    command = [sys.executable, str(ROOT / "main.py"), "test", "--collect-only", "-q", "-p", "no:cacheprovider",
               "tests/test_packaging.py"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    collected = [line for line in proc.stdout.splitlines() if line.startswith("tests/test_packaging.py::")]
    assert "tests/test_packaging.py::test_main_py_test_runs_pytest_over_this_checkouts_tests" in collected
    assert len(collected) == sum(1 for line in Path(__file__).read_text().splitlines() if line.startswith("def test_"))

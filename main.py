#!/usr/bin/env python3
"""Start CLIP-VAE Studio from a fresh clone with nothing but Python 3.10+.

    python3 main.py            open the studio on the bundled MNIST subset
    python3 main.py test       run the whole test suite
    python3 main.py train ...  any clipvae-studio sub-command

If this interpreter lacks the dependencies, a private virtual environment is made in
.venv/ on first use (`pip install -e .[test]` into it) and the command re-runs there.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
NEEDED = ("torch", "torchvision", "numpy", "PIL", "PySide6", "pyqtgraph", "tqdm", "sklearn", "scipy", "openTSNE",
          "pytest", "pytestqt", "hypothesis")


def _missing() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _bootstrap(missing: list[str]) -> Path:
    """Create .venv and install the project into it; reinstall when pyproject.toml changes."""
    python = _venv_python()
    stamp = VENV / ".installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    if sys.version_info < (3, 10):
        sys.exit("CLIP-VAE Studio needs Python 3.10 or newer")
    print(f"{sys.executable} lacks {', '.join(missing)}.", file=sys.stderr)
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    print("Installing CLIP-VAE Studio and its dependencies (first run only; torch is large) ...", file=sys.stderr)
    # A newer pip is nice to have, not needed: its failure (offline, say) must not stop the install.
    subprocess.call([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    try:
        subprocess.check_call([str(python), "-m", "pip", "install", "-e", f"{ROOT}[test]"])
    except subprocess.CalledProcessError as exc:
        sys.exit(f"Could not install the dependencies into {VENV} (pip exited with status {exc.returncode}; "
                 "its messages are above). Is the network reachable? Alternatively install them into this "
                 "Python yourself (pip install -e '.[test]') and run again.")
    stamp.write_text(digest)
    return python


def main() -> int:
    args = sys.argv[1:]
    in_venv = Path(sys.prefix).resolve() == VENV.resolve()
    missing = [] if in_venv else _missing()
    if missing and not os.environ.get("CLIPVAE_NO_BOOTSTRAP"):
        python = _bootstrap(missing)
        return subprocess.call([str(python), str(ROOT / "main.py"), *args])
    if args[:1] == ["test"]:
        # Run from the repo root so `clipvae_studio` imports from this checkout.
        return subprocess.call([sys.executable, "-m", "pytest", *args[1:]], cwd=ROOT)
    sys.path.insert(0, str(ROOT))
    from clipvae_studio.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())

"""The import contract, followed through indirect imports (docs/architecture.md, "Layers"):

1. clipvae_studio.core never imports PySide6, pyqtgraph or shiboken6, at any depth, not even
   inside a function or under `if TYPE_CHECKING:`;
2. the modules the window needs before torch (main_window, what it imports at module level, and
   what building the window loads) import no torch, torchvision or scikit-learn at module level,
   directly or through other modules. Imports inside functions are allowed there: that is how the
   GUI loads the torch-using core once the window is on screen.

import-linter (and grimp under it) follows every import statement alike, so it would flag each of
those deliberate function-level imports; the graph here is built from the syntax tree, which knows
module level from function level, and each contract is also checked in a fresh interpreter.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "clipvae_studio"
QT = {"PySide6", "pyqtgraph", "shiboken6"}
HEAVY = {"torch", "torchvision", "sklearn"}
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def source_of(module: str) -> Path | None:
    """The file of one of our modules (None for anything outside the package)."""
    if module.split(".")[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def submodules(package: str) -> list[str]:
    folder = source_of(package).parent
    return [f"{package}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"]


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class ImportCollector(ast.NodeVisitor):
    """Every module one file imports; with module_level_only, not what runs inside functions."""

    def __init__(self, module: str, module_level_only: bool):
        self.module, self.module_level_only = module, module_level_only
        self.is_package = source_of(module).name == "__init__.py"
        self.found: set[str] = set()

    def visit_FunctionDef(self, node):
        if not self.module_level_only:
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node):
        if is_type_checking(node.test) and self.module_level_only:  # never runs (but core may not even name Qt)
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            self.found.add(alias.name)

    def visit_ImportFrom(self, node):
        if node.level:
            anchor = self.module.split(".")
            anchor = anchor[:len(anchor) - node.level + (1 if self.is_package else 0)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        else:
            base = node.module
        self.found.add(base)
        for alias in node.names:
            if source_of(f"{base}.{alias.name}") is not None:
                self.found.add(f"{base}.{alias.name}")
            elif source_of(base) is not None and source_of(base).name == "__init__.py":
                self.found |= lazy_name_imports(base, alias.name)


def lazy_name_imports(package: str, name: str) -> set[str]:
    """What `from package import name` runs when `name` comes from the package's __getattr__
    (PEP 562): the imports written in __getattr__, or every submodule when it imports by a computed
    name (importlib.import_module), which is the most it could load."""
    tree = ast.parse(source_of(package).read_text())
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    defined |= {(a.asname or a.name).split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    getattr_fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"), None)
    if name in defined or getattr_fn is None:
        return set()
    collector = ImportCollector(package, module_level_only=False)
    collector.visit(getattr_fn)
    dynamic = any(isinstance(n, ast.Attribute) and n.attr == "import_module" for n in ast.walk(getattr_fn))
    return collector.found | (set(submodules(package)) if dynamic else set())


def imports_of(module: str, module_level_only: bool) -> set[str]:
    collector = ImportCollector(module, module_level_only)
    collector.visit(ast.parse(source_of(module).read_text()))
    parts = module.split(".")
    parents = {".".join(parts[:i]) for i in range(1, len(parts))}  # importing a.b.c runs a and a.b first
    return {m for m in collector.found | parents if m != module}


def chains_to(roots, forbidden: set[str], module_level_only: bool) -> list[str]:
    """Follow imports from `roots` through our own modules; one import chain per forbidden package reached."""
    came_from = {root: None for root in roots}
    queue, hits = list(roots), {}
    while queue:
        module = queue.pop(0)
        for imported in sorted(imports_of(module, module_level_only)):
            if imported in came_from:
                continue
            came_from[imported] = module
            if imported.split(".")[0] in forbidden and imported.split(".")[0] not in hits:
                chain, step = [imported], module
                while step is not None:
                    chain.append(step)
                    step = came_from[step]
                hits[imported.split(".")[0]] = " -> ".join(reversed(chain))
            elif source_of(imported) is not None:
                queue.append(imported)
    return sorted(hits.values())


def fresh_interpreter(code: str) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=120)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, proc.stderr[-3000:]
    return json.loads(line[len("RESULT "):])


CORE_MODULES = sorted(submodules(f"{PACKAGE}.core") + [f"{PACKAGE}.core"])

IMPORT_ALL_CORE = f"""
import importlib, json, sys
for name in {CORE_MODULES!r}:
    importlib.import_module(name)
print("RESULT", json.dumps(sorted(set({sorted(QT)!r}) & {{m.split(".")[0] for m in sys.modules}})))
"""

BUILD_WINDOW = f"""
import json, sys
from clipvae_studio.gui.app import create_application
app = create_application()
from clipvae_studio.gui.main_window import MainWindow
window = MainWindow(defer_model=True)
loaded = sorted(m for m in sys.modules if m.startswith("{PACKAGE}."))
heavy = sorted(set({sorted(HEAVY)!r}) & {{m.split(".")[0] for m in sys.modules}})
print("RESULT", json.dumps({{"loaded": loaded, "heavy": heavy}}))
"""


def test_core_never_imports_qt_at_any_depth():
    assert chains_to(CORE_MODULES, QT, module_level_only=False) == []
    assert fresh_interpreter(IMPORT_ALL_CORE) == []


def test_the_window_needs_no_torch_before_it_is_shown():
    built = fresh_interpreter(BUILD_WINDOW)
    assert built["heavy"] == []
    roots = sorted(set(built["loaded"]) | {f"{PACKAGE}.gui.main_window", f"{PACKAGE}.gui.app"})
    assert f"{PACKAGE}.gui.style" in roots  # the runtime list is real, not empty
    assert chains_to(roots, HEAVY, module_level_only=True) == []


def test_the_graph_follows_relative_lazy_and_indirect_imports():
    """The walker itself, on the real package: otherwise an empty graph would pass both contracts."""
    window = imports_of(f"{PACKAGE}.gui.main_window", module_level_only=True)
    assert {f"{PACKAGE}.gui.style", f"{PACKAGE}.core.config", f"{PACKAGE}.gui", "PySide6.QtCore"} <= window
    assert f"{PACKAGE}.core.trainer" not in window  # imported under TYPE_CHECKING and inside functions only
    assert f"{PACKAGE}.core.trainer" in imports_of(f"{PACKAGE}.gui.main_window", module_level_only=False) | \
        lazy_name_imports(f"{PACKAGE}.core", "Trainer")
    assert f"{PACKAGE}.core.trainer" in lazy_name_imports(f"{PACKAGE}.core", "Trainer")
    # torch is reached from the top-level API through core's lazy names, two modules deep
    chains = chains_to([f"{PACKAGE}.core.checkpoint"], {"torch"}, module_level_only=True)
    assert chains and chains[0].startswith(f"{PACKAGE}.core.checkpoint -> ")

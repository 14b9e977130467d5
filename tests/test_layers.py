"""The package's layers, read from its import graph (runtime imports, top-level or inside functions;
imports under `if TYPE_CHECKING:` are left out):

    core, stats ← weights ← models ← method ← run ← analysis, batch, evaluate, figures, report, tools
    ← experiment ← studio ← cli

A module may import its own layer and the layers before it, never a later one, and no chain of
imports may lead back to where it started. The root holds only the public API and `__main__`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clipstyler_opt"
LAYERS = {"core": 0, "stats": 0, "weights": 1, "models": 2, "method": 3, "run": 4,
          "analysis": 5, "batch": 5, "evaluate": 5, "figures": 5, "report": 5, "tools": 5,
          "experiment": 6, "studio": 7, "cli": 8}
ROOT_MODULES = {"__init__.py", "__main__.py"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports at run time (a `from P import X` where P.X is a
    module counts as importing P.X too)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "root", 99 if module.endswith("__main__") else -1
    return parts[1], LAYERS[parts[1]]


def test_the_root_holds_only_the_api_and_main() -> None:
    modules = {p.name for p in PACKAGE.glob("*.py")}
    assert modules == ROOT_MODULES
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS), "a new sub-package needs a place in LAYERS (and the README's layout map)"


def test_imports_follow_the_layer_order() -> None:
    wrong = []
    for module, imported in sorted(_graph().items()):
        name, level = _layer(module)
        for target in sorted(imported):
            target_name, target_level = _layer(target)
            if module == "clipstyler_opt" or target_name == "root":
                continue  # the root's API is lazy (strings), and nothing imports the root's modules
            if target_level > level:
                wrong.append(f"{module} ({name}) imports {target} ({target_name})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_the_graph_reader_sees_a_planted_upward_import(tmp_path: Path) -> None:
    """The checks above can fail: an upward import written into a copy of a core module is found."""
    source = (PACKAGE / "core" / "naming.py").read_text() + "\nfrom clipstyler_opt.cli import main\n"
    planted = tmp_path / "naming.py"
    planted.write_text(source)
    assert "clipstyler_opt.cli" in _imports("clipstyler_opt.core.naming", planted, _modules())
    lazy = "def f():\n    from clipstyler_opt.run import engine\n"
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from clipstyler_opt.cli import main\n"
    (tmp_path / "lazy.py").write_text(lazy + typed)
    assert _imports("clipstyler_opt.core.lazy", tmp_path / "lazy.py", _modules()) == {
        "clipstyler_opt.run", "clipstyler_opt.run.engine"}


@pytest.mark.parametrize("statement", [
    "import clipstyler_opt",
    "import clipstyler_opt.core.config",
    "from clipstyler_opt import StyleConfig; StyleConfig(size=256)",
    "import clipstyler_opt.cli",
])
def test_the_package_and_its_configuration_load_no_heavy_module(statement: str) -> None:
    code = (f"{statement}\nimport sys\n"
            "heavy = sorted(m for m in ('torch', 'PIL', 'numpy', 'open_clip', 'kornia', 'urllib.request',"
            " 'huggingface_hub', 'requests') if m in sys.modules)\nprint(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""

"""The package's layout: no import loop among its modules, and the project's root found without torch.

Imports are read from the source with ``ast``, at every depth: a function-local import counts,
because it closes a loop just as well (the old hideNet evaluate <-> training loop was kept alive by
one) and only hides it from the reader.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "hyreslib"


def _module(path: Path, package: Path = PKG) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str], root: Path) -> set[str]:
    """The package's modules that ``path`` imports, wherever in the file the import stands."""
    name = _module(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [node.module or ""])
            else:
                base = node.module or ""
            base = base.rstrip(".")
            for a in node.names:
                target = f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                if target in modules:
                    out.add(target)
    out.discard(name)
    return out


def import_graph(root: Path = PKG) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    modules = {_module(p, root) for p in files}
    return {_module(p, root): _imports(p, modules, root) for p in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_relative_and_function_local_imports():
    graph = import_graph()
    assert "hyreslib.training.engine" in graph["hyreslib.hidenet.training"]   # from ..training.engine import
    assert "hyreslib.hidenet.evaluate" in graph["hyreslib.hidenet.training"]  # a function-local import
    assert "hyreslib.codecs.jpeg" in graph["hyreslib.hyres.codec"]            # from ..codecs import jpeg as ...


def test_no_import_loop_among_the_package_modules():
    assert cycles(import_graph()) == []


def test_a_loop_is_found(tmp_path):
    pkg = tmp_path / "hyreslib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..sub.a import g\n")
    (pkg / "c.py").write_text("import hyreslib.sub.a\n")
    assert cycles(import_graph(pkg)) == [["hyreslib.sub.a", "hyreslib.sub.b"]]


def _defining(name: str) -> str:
    """The module that assigns ``name`` at its top level (exactly one may)."""
    found = [_module(p) for p in sorted(PKG.rglob("*.py"))
             if any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
                    for n in ast.parse(p.read_text()).body)]
    assert len(found) == 1, found
    return found[0]


def test_the_project_root_and_the_notebooks_are_found_without_torch():
    """``PROJECT_ROOT`` lives in a module that imports nothing heavy, and the runner finds the
    notebooks through it without loading torch (or numpy)."""
    roots = _defining("PROJECT_ROOT")
    code = (f"import sys\nimport {roots}\nfrom hyreslib.pipeline import runner\n"
            "assert runner.discover(runner.NOTEBOOKS_DIR), 'no notebooks found'\n"
            "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.strip() == "[]", out.stdout

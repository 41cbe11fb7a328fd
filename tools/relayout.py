"""Lay ``hyreslib/`` out as the pipeline reads: move modules into groups and rewrite every reference.

One step, run once from the repository root on a clean tree, then reviewed and committed::

    python tools/relayout.py            # moves, splits, rewrites; prints the move list for the commit message
    python tools/relayout.py --dry-run  # prints what it would do, changes nothing

What it does, in order:

1. **Splits** named top-level definitions out of a module into another (:data:`SPLITS`), by the
   definitions' AST line ranges (decorators and the comment lines just above come along). The new
   file gets the imports its definitions use; the old file loses imports nothing uses any more and
   imports what it still needs from the new one. A name missing from its module stops the script
   (unless it already stands in the target: then that step is done).
2. **Moves** whole files with ``git mv`` (:data:`MOVES`; :data:`OPTIONAL_MOVES` only where present)
   and gives each new group an ``__init__.py`` holding its one-line description.
3. **Rewrites** every reference to a moved module or name, in Python files (imports at any depth,
   relative ones recomputed from each file's new place; ``module.name`` where the name left the
   module), notebook code cells, and text (dotted names such as ``"hyreslib.x"`` in strings and docs,
   ``hyreslib/x.py`` paths) across the repository; no compatibility re-export is left behind.

It warns about what it cannot decide (a bare ``x.py`` in prose, a top-level module no table places)
and ends by importing every module of the package in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import textwrap
import sys
from dataclasses import dataclass, field
from pathlib import Path

PKG = "hyreslib"
ROOT = Path.cwd()
THIS = Path(__file__).resolve()

# Each group: its one-line description (its __init__.py docstring and its row in README's layout table).
GROUPS = {
    "core": "Foundations every layer uses: project and data roots, crash-safe files, resource limits, devices, images, "
            "checkpoints.",
    "datasets": "Where images come from: data roots, image sets and training crops, verified downloads.",
    "codecs": "Bytes: the container, the ANS entropy coder, the JPEG base layer and the standard image codecs.",
    "training": "One training loop for every stage, its distributed launch and clean interruption.",
    "results": "Measuring and recording: metrics, run manifests, saved reconstructions, RD tables, figures, "
               "the comparison widget.",
    "pipeline": "What commands and notebooks drive: profiles, the notebook runner, the classical sweep, the "
                "shipped models.",
}

MOVES = {
    "hyreslib.fileio": "hyreslib.core.fileio",
    "hyreslib.limits": "hyreslib.core.limits",
    "hyreslib.device": "hyreslib.core.device",
    "hyreslib.images": "hyreslib.core.images",
    "hyreslib.checkpoint": "hyreslib.core.checkpoint",
    "hyreslib.data": "hyreslib.datasets.data",
    "hyreslib.download": "hyreslib.datasets.download",
    "hyreslib.container": "hyreslib.codecs.container",
    "hyreslib.ans": "hyreslib.codecs.ans",
    "hyreslib.jpeg": "hyreslib.codecs.jpeg",
    "hyreslib.engine": "hyreslib.training.engine",
    "hyreslib.distributed": "hyreslib.training.distributed",
    "hyreslib.interrupt": "hyreslib.training.interrupt",
    "hyreslib.metrics": "hyreslib.results.metrics",
    "hyreslib.manifest": "hyreslib.results.manifest",
    "hyreslib.recons": "hyreslib.results.recons",
    "hyreslib.rd": "hyreslib.results.rd",
    "hyreslib.plotting": "hyreslib.results.plotting",
    "hyreslib.widgets": "hyreslib.results.widgets",
    "hyreslib.profiles": "hyreslib.pipeline.profiles",
    "hyreslib.runner": "hyreslib.pipeline.runner",
    "hyreslib.baselines": "hyreslib.pipeline.baselines",
    "hyreslib.models": "hyreslib.pipeline.models",
}
# Modules that work in progress may add: moved when they exist, passed over quietly when not.
OPTIONAL_MOVES = {
    "hyreslib.records": "hyreslib.results.records",
    "hyreslib.evaluation": "hyreslib.pipeline.evaluation",
    "hyreslib.notebook": "hyreslib.pipeline.notebook",
}
# Top-level modules that stay where they are.
STAY = {"hyreslib.cli"}


@dataclass
class Split:
    src: str                      # module (today's name) the definitions leave
    dst: str                      # module (final name) they go to; created when missing
    names: list[str]              # top-level definitions (def, class, NAME = ...) to carry
    doc: str = ""                 # docstring of a new dst module
    rename: dict[str, str] = field(default_factory=dict)  # old -> new identifier, in src and dst only


SPLITS = [
    Split("hyreslib.data", "hyreslib.core.roots", ["PROJECT_ROOT", "data_root"],
          doc="Where the project and its data live. Imports nothing heavy, so that ``hyres run`` and the\n"
              "runner find ``notebooks/`` without loading torch.\n\n"
              "Resolution of the data root: an explicit argument, else ``$HYRES_DATA``, else ``data/`` in the\n"
              "project."),
    Split("hyreslib.baselines", "hyreslib.codecs.standard",
          ["AVIF_SPEED", "JXL_EFFORT", "Codec", "check_quality", "_pillow_encode", "_pillow_decoder",
           "jxl_distance", "_jxl_decode", "_build_registry", "CODECS", "get_codec"],
          doc="Standard image codecs behind one interface: JPEG, WebP, AVIF, JPEG XL and lossless formats.\n\n"
              "Every codec is ``encode(uint8 HxWx3, quality) -> bytes`` and ``decode(bytes) -> uint8 HxWx3``\n"
              "(``quality`` 1..100, ignored by a lossless codec), so the classical sweep\n"
              "(:mod:`hyreslib.pipeline.baselines`) and hideNet's lossless tables measure them all the same way."),
    # hideNet's layout helpers leave the training module, which evaluation imports no more (no import loop).
    Split("hyreslib.hidenet.training", "hyreslib.hidenet.split", ["level_pairs"]),
    Split("hyreslib.hidenet.training", "hyreslib.hidenet.colour", ["to_pixels"]),
]

# Text that a move makes wrong, mended after the moves: (file, old, new); a missing ``old`` stops the script.
FIXUPS = [
    ("hyreslib/core/roots.py", "PROJECT_ROOT = Path(__file__).resolve().parents[1]",
     "PROJECT_ROOT = Path(__file__).resolve().parents[2]"),
]

TEXT_SUFFIXES = {".py", ".ipynb", ".md", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".txt", ".sh", ".rst"}
TEXT_NAMES = {"Makefile", "run"}
SKIP_DIRS = {"runs", ".venv", ".git", "figures", "models"}


class RelayoutError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------- names


def module_path(module: str, package: bool = False) -> Path:
    parts = module.split(".")
    return Path(*parts, "__init__.py") if package else Path(*parts[:-1], parts[-1] + ".py")


def path_module(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


class Layout:
    """Old module -> new module, and (old module, name) -> new module for split definitions."""

    def __init__(self, moves: dict[str, str], splits: list[Split], old_modules: set[str]):
        self.moves = moves
        self.names = {(s.src, n): s.dst for s in splits for n in s.names}
        self.renames = {(s.src, old): new for s in splits for old, new in s.rename.items()}
        self.renames.update({(s.dst, old): new for s in splits for old, new in s.rename.items()})
        self.old_modules = old_modules | {s.dst for s in splits}

    def module(self, module: str) -> str:
        return self.moves.get(module, module)

    def home(self, module: str, name: str) -> tuple[str, str]:
        """(new module, new name) of ``name`` imported from ``module``."""
        target = self.names.get((module, name))
        new_name = self.renames.get((module, name), name)
        return (target, new_name) if target else (self.module(module), new_name)

    def dotted(self, text: str) -> str:
        """A dotted reference (``hyreslib.x.y``) in its new spelling."""
        parts = text.split(".")
        for cut in range(len(parts), 0, -1):
            head = ".".join(parts[:cut])
            if head in self.old_modules or head == PKG:
                if cut < len(parts):
                    target, name = self.home(head, parts[cut])
                    if (head, parts[cut]) in self.names or name != parts[cut]:
                        return ".".join([target, name, *parts[cut + 1:]])
                return ".".join([self.module(head), *parts[cut:]])
        return text


# ---------------------------------------------------------------------------------------------- imports


def resolve(node: ast.ImportFrom, package: str | None) -> str | None:
    """The absolute module an ImportFrom names (None: relative outside a package)."""
    if not node.level:
        return node.module
    if package is None:
        return None
    base = package.split(".")
    if node.level > 1:
        base = base[:-(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def relative(target: str, package: str) -> tuple[int, str]:
    """(level, module) of ``target`` as a relative import from ``package``."""
    t, p = target.split("."), package.split(".")
    common = 0
    while common < min(len(t), len(p)) and t[common] == p[common]:
        common += 1
    return len(p) - common + 1, ".".join(t[common:])


def name_order(name: str) -> tuple:
    """isort's order by type: CONSTANTS, Classes, functions."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name.lower(), name


def format_from(module: str, aliases: list[tuple[str, str | None]], package: str | None, relative_form: bool,
                indent: int) -> str:
    if relative_form and package:
        level, rest = relative(module, package)
        head = "." * level + rest
    else:
        head = module
    names = [f"{n} as {a}" if a else n for n, a in sorted(dict.fromkeys(aliases), key=lambda x: name_order(x[0]))]
    line = f"from {head} import {', '.join(names)}"
    if indent + len(line) <= 120:
        return line
    opening = f"from {head} import ("
    lines, current = [], opening
    for i, n in enumerate(names):
        piece = n + (")" if i == len(names) - 1 else ",")
        if len(current) + len(piece) + indent > 119 and current.strip() not in ("", opening.strip()):
            lines.append(current.rstrip())
            current = " " * len(opening)
        current += piece + " "
    lines.append(current.rstrip())
    return ("\n" + " " * indent).join(lines)


@dataclass
class Context:
    old_package: str | None       # package relative imports resolved against, before the move
    new_package: str | None       # ... and after it
    moved: bool                   # the file itself moved: relative imports are always recomputed


def magic_masked(source: str) -> str:
    """Notebook source with IPython magics and shell lines turned into comments of the same length."""
    return "\n".join("#" + line[1:] if line.lstrip()[:1] in "%!" and line.strip() else line
                     for line in source.split("\n"))


def offsets(source: str) -> list[int]:
    starts, pos = [0], 0
    for line in source.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return starts


def span(node: ast.AST, starts: list[int]) -> tuple[int, int]:
    return starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset


def bound_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def rewrite_sources(sources: list[str], ctx: Context, layout: Layout, where: str) -> list[str]:
    """Rewrite kit imports and ``module.moved_name`` references in one file (or one notebook's cells)."""
    trees = []
    for source in sources:
        try:
            trees.append(ast.parse(magic_masked(source)))
        except SyntaxError as exc:
            raise RelayoutError(f"{where}: cannot parse ({exc})") from exc
    # names bound to a kit module: alias -> old module
    modules: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = resolve(node, ctx.old_package)
                for a in node.names:
                    if base and f"{base}.{a.name}" in layout.old_modules:
                        modules[a.asname or a.name] = f"{base}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name in layout.old_modules:
                        modules[a.asname] = a.name
    # module.name where name left the module: the module's alias is replaced by the new module's name
    edits: list[list[tuple[int, int, str]]] = [[] for _ in sources]
    wanted: dict[str, set[str]] = {}            # alias -> new modules it now needs beside it
    replaced: set[int] = set()
    all_bound = set().union(*(bound_names(t) for t in trees)) if trees else set()
    for i, tree in enumerate(trees):
        starts = offsets(sources[i])
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules):
                old = modules[node.value.id]
                target, name = layout.home(old, node.attr)
                if target == layout.module(old) and name == node.attr:
                    continue
                short = target.rsplit(".", 1)[1]
                if short in all_bound and modules.get(short) != target:
                    raise RelayoutError(f"{where}: {node.value.id}.{node.attr} becomes {short}.{name}, but "
                                        f"{short!r} already names something else there")
                a, b = span(node, starts)
                edits[i].append((a, b, f"{short}.{name}"))
                wanted.setdefault(node.value.id, set()).add(target)
                replaced.add(id(node.value))
    for tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)
                    and node.args[0].id in modules and isinstance(node.args[1], ast.Constant)
                    and (modules[node.args[0].id], node.args[1].value) in layout.names):
                raise RelayoutError(f"{where}:{node.lineno}: {node.args[0].id}, {node.args[1].value!r}: that name "
                                    "leaves the module; rewrite by hand")
    still_used = {alias for tree in trees for node in ast.walk(tree)
                  if isinstance(node, ast.Name) and node.id in modules and id(node) not in replaced
                  for alias in [node.id]}
    for alias, targets in wanted.items():
        for t in targets:
            modules.setdefault(t.rsplit(".", 1)[1], t)
    # imports
    for i, tree in enumerate(trees):
        starts = offsets(sources[i])
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                text = rewrite_import(node, ctx, layout, wanted, still_used)
                if text is not None:
                    a, b = span(node, starts)
                    if text != sources[i][a:b]:
                        edits[i].append((a, b, text))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if not a.asname and a.name in {m for m, _ in layout.names}:
                        REVIEW.append(f"{where}: 'import {a.name}': a name used through it may now live elsewhere")
                    if a.asname and a.name in layout.old_modules and a.asname in wanted:
                        raise RelayoutError(f"{where}: 'import {a.name} as {a.asname}' loses names: rewrite by hand")
    out = []
    for source, file_edits in zip(sources, edits):
        for a, b, text in sorted(file_edits, reverse=True):
            source = source[:a] + text + source[b:]
        out.append(source)
    return out


def _order(module: str, package: str | None) -> tuple:
    """isort's order of from-imports: ``from ..x`` before ``from .y``, then by module."""
    if not package:
        return 0, module
    level, rest = relative(module, package)
    return -level, rest


def rewrite_import(node: ast.ImportFrom, ctx: Context, layout: Layout, wanted: dict[str, set[str]],
                   still_used: set[str]) -> str | None:
    base = resolve(node, ctx.old_package)
    if not base or not (base == PKG or base.startswith(PKG + ".")):
        return None
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for a in node.names:
        bound = a.asname or a.name
        sub = f"{base}.{a.name}"
        if sub in layout.old_modules:
            target_full = layout.module(sub)
            target, name = target_full.rsplit(".", 1)
        else:
            target, name = layout.home(base, a.name)
        keep = not (bound in wanted and bound not in still_used)
        if keep:
            groups.setdefault(target, []).append((name, a.asname if a.asname != name else None))
        for new in sorted(wanted.get(bound, ())):
            pkg, short = new.rsplit(".", 1)
            groups.setdefault(pkg, []).append((short, None))
    relative_form = node.level > 0
    package = ctx.new_package if relative_form else None
    if not ctx.moved and len(groups) == 1 and list(groups) == [base] and not wanted.keys() & {
            a.asname or a.name for a in node.names} and all(
            layout.home(base, a.name)[1] == a.name for a in node.names):
        return None
    indent = node.col_offset
    lines = [format_from(m, names, package, relative_form, indent)
             for m, names in sorted(groups.items(), key=lambda kv: _order(kv[0], package))]
    return ("\n" + " " * indent).join(lines)


# ---------------------------------------------------------------------------------------------- splits


def top_blocks(tree: ast.Module, lines: list[str]) -> dict[str, tuple[int, int]]:
    """name -> (first line, last line), 0-based inclusive, of each top-level definition, with its
    decorators and the comment lines right above it."""
    blocks = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names, first = [node.targets[0].id], node.lineno - 1
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names, first = [node.target.id], node.lineno - 1
        else:
            continue
        while first > 0 and lines[first - 1].startswith("#"):
            first -= 1
        for name in names:
            blocks[name] = (first, node.end_lineno - 1)
    return blocks


def used_names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def import_statements(tree: ast.Module) -> list[ast.stmt]:
    return [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]


def stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def tidy(text: str) -> str:
    """Two blank lines around top-level def/class, at most two anywhere between top-level statements."""
    tree = ast.parse(text)
    lines = text.split("\n")
    body = tree.body
    for prev, node in reversed(list(zip(body, body[1:]))):
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while first > 0 and lines[first - 1].startswith("#"):
            first -= 1
        gap = range(prev.end_lineno, first)
        if any(lines[j].strip() for j in gap):
            continue
        want = 2 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or isinstance(
            prev, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else min(len(gap), 2)
        lines[prev.end_lineno:first] = [""] * want
    return "\n".join(lines)


def is_kit_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == PKG
                                                 or (node.module or "").startswith(PKG + "."))


def sort_kit_imports(text: str) -> str:
    """Sort each run of adjacent module-level kit imports as isort does (``from ..x`` before ``from .y``)."""
    tree = ast.parse(magic_masked(text))
    lines = text.split("\n")
    runs, run = [], []
    for node in tree.body:
        if is_kit_import(node) and node.col_offset == 0 and (not run or node.lineno == run[-1].end_lineno + 1):
            run.append(node)
            continue
        runs.append(run)
        run = [node] if is_kit_import(node) and node.col_offset == 0 else []
    runs.append(run)
    for run in reversed([r for r in runs if len(r) > 1]):
        chunks = sorted((( -n.level, n.module or ""), lines[n.lineno - 1:n.end_lineno]) for n in run)
        lines[run[0].lineno - 1:run[-1].end_lineno] = [line for _, chunk in chunks for line in chunk]
    return "\n".join(lines)


def import_group(node: ast.stmt) -> int:
    """0 future, 1 standard library, 2 third party, 3 the kit."""
    if isinstance(node, ast.ImportFrom) and node.module == "__future__":
        return 0
    if is_kit_import(node):
        return 3
    module = node.names[0].name if isinstance(node, ast.Import) else node.module
    return 1 if stdlib(module) else 2


def import_key(node: ast.stmt) -> tuple:
    """isort's order inside a section: plain imports first, then from-imports, by module."""
    if isinstance(node, ast.Import):
        return 0, node.names[0].name.lower()
    return 1, -node.level, (node.module or "").lower()


def insert_imports(text: str, statements: list[str]) -> str:
    """Add import statements to a module, each in its section at isort's place."""
    for statement in statements:
        tree = ast.parse(text)
        lines = text.split("\n")
        new = ast.parse(statement).body[0]
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and n.col_offset == 0]
        same = [n for n in imports if import_group(n) == import_group(new)]
        if same:
            after = [n for n in same if import_key(n) > import_key(new)]
            at = after[0].lineno - 1 if after else same[-1].end_lineno
            lines[at:at] = [statement]
        else:
            before = [n for n in imports if import_group(n) < import_group(new)]
            at = before[-1].end_lineno if before else (tree.body[0].end_lineno if ast.get_docstring(tree) else 0)
            lines[at:at] = ["", statement]
        text = "\n".join(lines)
    return text


def apply_rename(text: str, rename: dict[str, str]) -> str:
    for old, new in rename.items():
        text = re.sub(rf"(?<![\w.]){re.escape(old)}\b", new, text)
    return text


def defined_in(path: Path) -> dict[str, tuple[int, int]]:
    """The top-level definitions of a file (none when it does not exist)."""
    if not path.exists():
        return {}
    text = path.read_text()
    return top_blocks(ast.parse(text), text.split("\n"))


def remove_lines(lines: list[str], removed: set[int]) -> list[str]:
    """``lines`` without ``removed``, the blank lines between removed ones, and, where a blank line
    stood before a removed run, the blank lines after it (so the gap keeps its size)."""
    def next_solid(j: int) -> int:
        while j < len(lines) and not lines[j].strip() and j not in removed:
            j += 1
        return j

    out, j = [], 0
    while j < len(lines):
        if j not in removed:
            out.append(lines[j])
            j += 1
            continue
        while j < len(lines) and (j in removed or next_solid(j) in removed):
            j += 1
        if out and not out[-1].strip():
            while j < len(lines) and not lines[j].strip():
                j += 1
    return out


def do_split(split: Split, layout: Layout, log: list[str]) -> None:
    src_path = module_path(split.src)
    dst_path = module_path(split.dst)
    if not src_path.exists():
        if all(split.rename.get(n, n) in defined_in(dst_path) for n in split.names):
            log.append(f"split {split.src} -> {split.dst}: already done")
            return
        raise RelayoutError(f"{src_path} is missing and {dst_path} lacks some of {split.names}: update SPLITS")
    src_text = src_path.read_text()
    tree = ast.parse(src_text)
    lines = src_text.split("\n")
    blocks = top_blocks(tree, lines)
    names = [n for n in split.names if n in blocks]
    missing = [n for n in split.names if n not in blocks]
    if missing:
        done = [n for n in missing if split.rename.get(n, n) in defined_in(dst_path)]
        if len(done) != len(missing):
            raise RelayoutError(f"{src_path}: no top-level definition named {sorted(set(missing) - set(done))} "
                                f"to carry to {dst_path}; update SPLITS")
        if not names:
            log.append(f"split {split.src} -> {split.dst}: already done")
            return
    # what the carried definitions use from their module goes with them (the module then imports it back)
    carried = []
    while True:
        ranges = sorted(set(blocks[n] for n in names))
        moved_src = "\n".join("\n".join(lines[a:b + 1]) for a, b in ranges)
        moved_tree = ast.parse(moved_src)
        needs = used_names(moved_tree)
        more = sorted((needs & set(blocks)) - set(names), key=lambda n: blocks[n])
        if not more:
            break
        names += more
        carried += more
    old_package = split.src.rsplit(".", 1)[0]
    dst_package = split.dst.rsplit(".", 1)[0]
    # the imports the carried definitions use, spelled for dst
    std, third, local = [], [], []
    futures = [n for n in import_statements(tree) if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    for node in import_statements(tree):
        if node in futures:
            continue
        aliases = [a for a in node.names if (a.asname or a.name).split(".")[0] in needs]
        if not aliases:
            continue
        if isinstance(node, ast.Import):
            for a in aliases:
                (std if stdlib(a.name) else third).append(f"import {a.name}" + (f" as {a.asname}" if a.asname else ""))
            continue
        base = resolve(node, old_package)
        if base == PKG or base.startswith(PKG + "."):
            groups: dict[str, list] = {}
            for a in aliases:
                sub = f"{base}.{a.name}"
                if sub in layout.old_modules:
                    target, name = layout.module(sub).rsplit(".", 1)
                else:
                    target, name = layout.home(base, a.name)
                if target != split.dst:
                    groups.setdefault(target, []).append((name, a.asname))
            local += [format_from(m, ns, dst_package, True, 0) for m, ns in groups.items()]
        else:
            text = format_from(base, [(a.name, a.asname) for a in aliases], None, False, 0)
            (std if stdlib(base) else third).append(text)
    moved_src = apply_rename(moved_src, split.rename)
    if dst_path.exists():
        dst_text = dst_path.read_text()
        dst_tree = ast.parse(dst_text)
        have = bound_names(dst_tree)
        new_imports = [s for s in std + third + local
                       if not all((x.asname or x.name) in have for x in ast.parse(s).body[0].names)]
        dst_text = insert_imports(dst_text.rstrip("\n"), new_imports) + "\n\n\n" + moved_src + "\n"
    else:
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        head = f'"""{split.doc}\n"""\n' if split.doc else ""
        groups_text = "\n\n".join("\n".join(g) for g in (std, third, local) if g)
        future = "from __future__ import annotations\n\n" if futures else ""
        dst_text = f"{head}\n{future}{groups_text}\n\n{moved_src}\n"
    dst_path.write_text(tidy(dst_text))
    # what stays behind: without the carried blocks, without imports only they used, importing what it still needs
    rest = "\n".join(remove_lines(lines, {j for a, b in ranges for j in range(a, b + 1)}))
    rest_tree = ast.parse(rest)
    rest_needs = used_names(rest_tree)
    still = sorted(set(names) & rest_needs)
    rest_lines = rest.split("\n")
    edits = []
    merged = False
    for node in import_statements(rest_tree):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        kept = [a for a in node.names if not ((a.asname or a.name).split(".")[0] in needs
                                               and (a.asname or a.name).split(".")[0] not in rest_needs)]
        extra = []
        if isinstance(node, ast.ImportFrom) and node.level and still and resolve(node, old_package) == split.dst:
            extra, merged = [(n, None) for n in still], True
        if len(kept) == len(node.names) and not extra:
            continue
        if isinstance(node, ast.Import):
            new = "\n".join(f"import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in kept)
        else:
            new = format_from(resolve(node, old_package) if node.level else node.module,
                              [(a.name, a.asname) for a in kept] + extra, old_package if node.level else None,
                              bool(node.level), 0) if kept or extra else ""
        edits.append((node.lineno - 1, node.end_lineno - 1, new))
    if still and not merged:
        anchor = max((n.end_lineno for n in import_statements(rest_tree)), default=0)
        edits.append((anchor, anchor - 1, format_from(split.dst, [(n, None) for n in still], old_package, True, 0)))
    for a, b, new in sorted(edits, reverse=True):
        rest_lines[a:b + 1] = new.split("\n") if new else []
    src_path.write_text(tidy(apply_rename("\n".join(rest_lines), split.rename)))
    shown = [f"{n} (as {split.rename[n]})" if n in split.rename else n for n in names]
    log.append(f"split {split.src}: {', '.join(shown)} -> {split.dst}")
    if carried:
        log.append(f"  ({', '.join(carried)}: carried along, the named definitions use them)")
        layout.names.update({(split.src, n): split.dst for n in carried})


# ---------------------------------------------------------------------------------------------- files


def repo_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], check=True,
                         capture_output=True, text=True).stdout.split("\n")
    files = []
    for name in out:
        p = Path(name)
        if not name or not p.is_file() or p.resolve() == THIS or (p.parts and p.parts[0] in SKIP_DIRS):
            continue
        if p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES:
            files.append(p)
    return files


DOTTED = re.compile(rf"(?<![\w.]){PKG}(?:\.\w+)+")
PATHS = re.compile(rf"(?<![\w/]){PKG}/((?:\w+/)*\w+)\.py\b")


REVIEW: list[str] = []   # text references to split names: a mock.patch target may want the importer's module


def rewrite_text(text: str, layout: Layout, where: str = "") -> str:
    def dotted(m: re.Match) -> str:
        new = layout.dotted(m.group(0))
        parts = m.group(0).split(".")
        if any((".".join(parts[:i]), parts[i]) in layout.names for i in range(1, len(parts))):
            REVIEW.append(f"{where}: {m.group(0)} -> {new}")
        return new

    text = DOTTED.sub(dotted, text)

    def path(m: re.Match) -> str:
        module = f"{PKG}." + m.group(1).replace("/", ".")
        return str(module_path(layout.module(module))) if module in layout.moves else m.group(0)

    return PATHS.sub(path, text)


def rewrite_notebook(path: Path, layout: Layout) -> bool:
    raw = path.read_text()
    nb = json.loads(raw)
    code = [c for c in nb["cells"] if c.get("cell_type") == "code"]
    ctx = Context(None, None, False)
    new = rewrite_sources(["".join(c["source"]) for c in code], ctx, layout, str(path))
    for cell, source in zip(code, new):
        if source != "".join(cell["source"]):
            cell["source"] = sort_kit_imports(source).splitlines(keepends=True)
    for cell in nb["cells"]:
        cell["source"] = rewrite_text("".join(cell["source"]), layout, str(path)).splitlines(keepends=True)
    out = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if out != raw:
        path.write_text(out)
        return True
    return False


def context_of(path: Path, old_module_of: dict[Path, str]) -> Context:
    if path.parts[0] != PKG or path.suffix != ".py":
        return Context(None, None, False)
    new_mod = path_module(path)
    old_mod = old_module_of.get(path, new_mod)
    pkg_of = (lambda m: m) if path.name == "__init__.py" else (lambda m: m.rsplit(".", 1)[0])
    return Context(pkg_of(old_mod), pkg_of(new_mod), old_mod != new_mod)


def mentions(files: list[Path], layout: Layout) -> list[str]:
    """Bare ``x.py`` mentions of moved files (prose the script cannot place): for a human to read."""
    moved = {m.rsplit(".", 1)[1] for m in layout.moves}
    if not moved:
        return []
    pattern = re.compile(rf"(?<![\w/.])({'|'.join(sorted(moved))})\.py\b")
    out = []
    for f in files:
        for n, line in enumerate(f.read_text().split("\n"), 1):
            if pattern.search(line):
                out.append(f"{f}:{n}: {line.strip()[:100]}")
    return out


def readme_table(moves: dict[str, str]) -> None:
    """The README's layout table gets one row per group after the ``hyreslib/`` row."""
    readme = Path("README.md")
    text = readme.read_text()
    row = re.search(rf"^\| `{PKG}/` \|.*$", text, flags=re.M)
    if not row:
        print(f"warning: README.md has no `{PKG}/` row in a table: add the groups' rows by hand")
    if not row or f"| `{PKG}/core/` |" in text:
        return
    rows = []
    for group, doc in GROUPS.items():
        members = sorted(m.rsplit(".", 1)[1] for m in set(moves.values()) | {s.dst for s in SPLITS}
                         if m.startswith(f"{PKG}.{group}."))
        rows.append(f"| `{PKG}/{group}/` | {doc[0].lower() + doc[1:].rstrip('.')} ({', '.join(members)}) |")
    rows.insert(4, f"| `{PKG}/hyres/`, `{PKG}/hidenet/` | the two codecs, each a package: model, file format, "
                   "training, evaluation, figures, CLI |")
    text = text[:row.end()] + "\n" + "\n".join(rows) + text[row.end():]
    readme.write_text(text)


# ---------------------------------------------------------------------------------------------- main


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    ap.add_argument("--allow-dirty", action="store_true", help="run on a tree with uncommitted changes")
    ap.add_argument("--no-check", action="store_true", help="skip importing every module at the end")
    args = ap.parse_args(argv)
    if not Path(PKG, "__init__.py").is_file():
        raise RelayoutError(f"run from the repository root (no {PKG}/__init__.py here)")
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    if dirty and not (args.allow_dirty or args.dry_run):
        raise RelayoutError("the tree has uncommitted changes: commit or stash them first (or --allow-dirty)")

    old_files = sorted(Path(PKG).rglob("*.py"))
    old_modules = {path_module(p) for p in old_files}
    moves = dict(MOVES)
    moves.update({old: new for old, new in OPTIONAL_MOVES.items() if old in old_modules})
    for old, new in moves.items():
        if old not in old_modules and not module_path(new).exists():
            raise RelayoutError(f"{module_path(old)} is missing: update MOVES")
    moves = {old: new for old, new in moves.items() if old in old_modules}
    placed = set(moves) | STAY | {s.src for s in SPLITS} | {PKG}
    unplaced = sorted(m for m in old_modules if m.count(".") == 1 and m not in placed
                      and not Path(*m.split(".")).is_dir())
    layout = Layout(moves, SPLITS, old_modules)
    move_list = [f"{module_path(o)} -> {module_path(n)}" for o, n in moves.items()]
    if args.dry_run:
        print("\n".join([*(f"split {s.src}: {', '.join(s.names)} -> {s.dst}" for s in SPLITS), *move_list]))
        if unplaced:
            print(f"warning: top-level modules no table places (they stay): {', '.join(unplaced)}")
        return 0

    log: list[str] = []
    for split in SPLITS:
        do_split(split, layout, log)
    old_module_of = {module_path(new): old for old, new in moves.items()}
    for group, doc in GROUPS.items():
        init = Path(PKG, group, "__init__.py")
        init.parent.mkdir(exist_ok=True)
        if not init.exists():
            init.write_text('"""' + textwrap.fill(doc, 116, break_on_hyphens=False) + '"""\n')
    for old, new in moves.items():
        git("mv", str(module_path(old)), str(module_path(new)))
    for split in SPLITS:
        path = module_path(split.dst)
        old_module_of.setdefault(path, split.dst)
    git("add", "-A", PKG)

    changed, long = [], []
    files = repo_files()
    for path in files:
        before = path.read_text()
        old_lines = set(before.split("\n"))
        if path.suffix == ".ipynb":
            if rewrite_notebook(path, layout):
                changed.append(path)
            continue
        text = before
        if path.suffix == ".py":
            text = rewrite_sources([text], context_of(path, old_module_of), layout, str(path))[0]
            if text != before:
                text = sort_kit_imports(text)
        text = rewrite_text(text, layout, str(path))
        if text != before:
            path.write_text(text)
            changed.append(path)
            long += [f"{path}:{n}: {len(line)} columns" for n, line in enumerate(text.split("\n"), 1)
                     if len(line) > 120 and line not in old_lines and path.suffix == ".py"]
    for name, old, new in FIXUPS:
        p = Path(name)
        text = p.read_text()
        if old not in text and new in text:
            continue
        if old not in text:
            raise RelayoutError(f"{name}: expected text not found, mend by hand: {old!r}")
        p.write_text(text.replace(old, new))
    readme_table(moves)
    git("add", "-A", PKG)

    print("Move list:")
    print("\n".join(f"  {line}" for line in log + move_list))
    print(f"rewrote references in {len(changed)} files")
    if unplaced:
        print(f"warning: top-level modules no table places (they stay): {', '.join(unplaced)}")
    if long:
        print("lines over 120 columns to wrap by hand:")
        print("\n".join(f"  {x}" for x in long))
    if REVIEW:
        print("text references to split names, rewritten to the new home (a mock.patch target may want the module "
              "that imports the name instead):")
        print("\n".join(f"  {x}" for x in REVIEW))
    notes = mentions([p for p in files if p.suffix in (".py", ".md", ".ipynb")], layout)
    if notes:
        print("check these bare file names by hand (prose the script cannot place):")
        print("\n".join(f"  {n}" for n in notes))
    if not args.no_check:
        modules = sorted(path_module(p) for p in Path(PKG).rglob("*.py"))
        code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % modules
        result = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "PYTHONPATH": "."})
        print(f"imported all {len(modules)} modules: {'ok' if result.returncode == 0 else 'FAILED'}")
        return result.returncode
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RelayoutError as exc:
        print(f"relayout: error: {exc}", file=sys.stderr)
        sys.exit(2)

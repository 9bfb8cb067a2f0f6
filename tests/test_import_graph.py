"""Imports inside ``lora_lab/`` go one way: the graph of every import (read from the source with `ast`,
so nothing is imported; module-level and inside functions alike) has no cycle, and no module imports a
layer below its own in the table of docs/architecture.md. Imports under ``if TYPE_CHECKING:`` are
annotations only and do not count."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "lora_lab"
ARCHITECTURE = PACKAGE_DIR.parent / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(tree: ast.Module):
    """Import statements run when the module is imported: in its body and in its top-level
    ``if`` / ``try`` / ``with`` blocks, not in functions or classes, not under ``if TYPE_CHECKING:``."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody, *(s for h in node.handlers for s in h.body)])
        elif isinstance(node, ast.With):
            pending.extend(node.body)


def all_imports(tree: ast.Module):
    """Every import statement of the module, in functions and classes too, except under
    ``if TYPE_CHECKING:`` (annotations only, never run)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))


def imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Dotted names an import statement may refer to (``from a import b`` names both ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(reader=top_level_imports) -> dict[str, set[str]]:
    """Module -> the ``lora_lab`` modules it imports (``reader``: which import statements count)."""
    files = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {t for node in reader(tree) for t in imported_names(node, package)}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def documented_layers() -> dict[str, int]:
    """Module prefix -> its layer number, from the table in docs/architecture.md (rows
    ``| number | name | `prefix`, `prefix` | ... |``)."""
    layers = {}
    for line in ARCHITECTURE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            for prefix in re.findall(r"`([\w.]+)`", cells[2]):
                layers[prefix] = int(cells[0])
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the longest documented prefix of ``module`` (the bare package matches only itself)."""
    matches = [p for p in layers if module == p or (p != "lora_lab" and module.startswith(p + "."))]
    return layers[max(matches, key=len)] if matches else None


def upward_imports(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """``a (layer i) -> b (layer j)`` for every import of a higher-numbered layer (j > i)."""
    return sorted(
        f"{a} ({layer_of(a, layers)}) -> {b} ({layer_of(b, layers)})"
        for a, targets in graph.items()
        for b in targets
        if layer_of(b, layers) > layer_of(a, layers)
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None when the graph is acyclic (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return [*path[path.index(child):], child]
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def test_imports_of_lora_lab_are_acyclic_including_function_level():
    graph = import_graph(all_imports)
    assert {"lora_lab.train", "lora_lab.run.trial", "lora_lab.config.trial_config", "lora_lab.results.record"} <= set(graph)
    assert {"lora_lab.run.gate", "lora_lab.config.trial_config"} <= graph["lora_lab.run.trial"]  # edges are really read
    assert "lora_lab.run.gate" in graph["lora_lab.cli"]  # an import inside a function counts
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_every_module_is_in_a_documented_layer_and_nothing_imports_upward():
    layers = documented_layers()
    assert layers["lora_lab"] == 1 and layers["lora_lab.cli"] == max(layers.values())
    graph = import_graph(all_imports)
    unplaced = sorted(m for m in graph if layer_of(m, layers) is None)
    assert not unplaced, f"modules in no layer of docs/architecture.md: {unplaced}"
    assert not upward_imports(graph, layers), "imports of a lower layer:\n" + "\n".join(upward_imports(graph, layers))


def test_layer_check_sees_an_upward_import_inside_a_function():
    source = "import lora_lab.errors\ndef f():\n    from lora_lab.run import trial\nif TYPE_CHECKING:\n    import lora_lab.cli\n"
    names = {n for node in all_imports(ast.parse(source)) for n in imported_names(node, "lora_lab.adapters")}
    assert names == {"lora_lab.errors", "lora_lab.run", "lora_lab.run.trial"}
    layers = {"lora_lab.errors": 1, "lora_lab.adapters": 2, "lora_lab.run": 9}
    graph = {"lora_lab.adapters.x": {"lora_lab.errors", "lora_lab.run.trial"}}
    assert upward_imports(graph, layers) == ["lora_lab.adapters.x (2) -> lora_lab.run.trial (9)"]


def test_cycle_finder_sees_a_cycle_and_a_relative_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    source = "from . import sibling\nfrom ..errors import ConfigError\nif TYPE_CHECKING:\n    import lora_lab.x\n"
    names = [n for node in top_level_imports(ast.parse(source)) for n in imported_names(node, "lora_lab.results")]
    assert sorted(names) == ["lora_lab.errors", "lora_lab.errors.ConfigError", "lora_lab.results",
                             "lora_lab.results.sibling"]  # nothing from under TYPE_CHECKING


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded to rooms: each subpackage of ``lora_lab`` (``lora_lab.results``) and each
    top-level module (``lora_lab.train``) is one node; the package root itself (re-exports) is left out."""
    def room(module: str) -> str:
        return ".".join(module.split(".")[:2])

    rooms: dict[str, set[str]] = {}
    for a, targets in graph.items():
        if a == "lora_lab":
            continue
        rooms.setdefault(room(a), set()).update(room(b) for b in targets if b != "lora_lab" and room(b) != room(a))
    return rooms


def test_packages_do_not_import_each_other_in_a_circle():
    """Two packages of one layer may import each other module by module without a module cycle (the report
    showing the analyses while the analyses read the report's records); folded to packages that is a
    circle, and the layer of each is unclear: none is allowed."""
    rooms = package_graph(import_graph(all_imports))
    assert "lora_lab.results" in rooms["lora_lab.analysis"]  # edges are really folded
    assert find_cycle(rooms) is None, " -> ".join(find_cycle(rooms))
    assert find_cycle(package_graph({"lora_lab.a.x": {"lora_lab.b.y"}, "lora_lab.b.z": {"lora_lab.a.w"}})) is not None


def defined_names(path: Path) -> set[str]:
    """Names a module defines or imports at its top level (what ``from module import name`` can take)."""
    names = set()
    pending = list(ast.parse(path.read_text(), filename=str(path)).body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            pending.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
            if isinstance(node, ast.Try):
                pending.extend(s for h in node.handlers for s in h.body)
    return names


def test_every_import_of_a_lora_lab_name_finds_it_even_inside_functions():
    """An import run only on a rare path (inside a function: a run without snapshots, a failure branch;
    a slow test or a benchmark) must still name a module that exists and a name it defines: a file move
    that missed one is caught here, not by the user who first takes that path."""
    files = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    readers = [*PACKAGE_DIR.rglob("*.py"), *(PACKAGE_DIR.parent / "tests").rglob("*.py"), *(PACKAGE_DIR.parent / "benchmarks").rglob("*.py")]
    missing = []
    for path in readers:
        where = str(path.relative_to(PACKAGE_DIR.parent))
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
        for node in all_imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                missing += [f"{where}: import {a.name}" for a in node.names if a.name.startswith("lora_lab") and a.name not in files]
                continue
            base = imported_names(node, package)[0]
            if not base.startswith("lora_lab"):
                continue
            if base not in files:
                missing.append(f"{where}: from {base} (no such module)")
                continue
            defined = defined_names(files[base])
            missing += [f"{where}: from {base} import {a.name}" for a in node.names
                        if a.name != "*" and a.name not in defined and f"{base}.{a.name}" not in files]
    assert not missing, "imports of names that do not exist:\n" + "\n".join(sorted(missing))

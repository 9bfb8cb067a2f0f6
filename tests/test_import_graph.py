"""Imports inside ``lora_lab/`` go one way: the graph of module-level imports (read from the source with
`ast`, so nothing is imported) has no cycle. Imports under ``if TYPE_CHECKING:`` are annotations only
and do not count; imports inside functions are not module-level."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "lora_lab"


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


def imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Dotted names an import statement may refer to (``from a import b`` names both ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``lora_lab`` modules it imports at module level."""
    files = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {t for node in top_level_imports(tree) for t in imported_names(node, package)}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


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


def test_module_level_imports_of_lora_lab_are_acyclic():
    graph = import_graph()
    assert {"lora_lab.train", "lora_lab.run.trial", "lora_lab.config", "lora_lab.results.record"} <= set(graph)
    assert {"lora_lab.run.gate", "lora_lab.config"} <= graph["lora_lab.run.trial"]  # edges are really read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_cycle_finder_sees_a_cycle_and_a_relative_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    source = "from . import sibling\nfrom ..errors import ConfigError\nif TYPE_CHECKING:\n    import lora_lab.x\n"
    names = [n for node in top_level_imports(ast.parse(source)) for n in imported_names(node, "lora_lab.results")]
    assert sorted(names) == ["lora_lab.errors", "lora_lab.errors.ConfigError", "lora_lab.results",
                             "lora_lab.results.sibling"]  # nothing from under TYPE_CHECKING

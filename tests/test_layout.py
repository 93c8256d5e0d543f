"""The package's shape: rooms import only downward, no module imports itself back through
others (imports inside functions count), and no module outgrows 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "smptune"

#: Each room (a subpackage, or a module at the top) and its floor: a module may import only
#: from rooms on its floor or below. docs/architecture.md draws the same picture.
FLOORS = {
    "errors": 0,
    "urls": 0,
    "params": 0,
    "retries": 0,
    "messages": 1,
    "metric_keys": 1,
    "requirements": 1,
    "records": 2,
    "search": 3,
    "trainable": 4,
    "config": 4,
    "config_fields": 4,
    "config_files": 4,
    "config_objectives": 4,
    "lifecycle": 4,
    "task_labels": 4,
    "queue": 5,
    "results": 6,
    "worker": 7,
    "training": 8,
    "fakes": 8,
    "api": 9,
    "cli": 9,
    "__main__": 10,
}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The smptune modules ``name`` imports anywhere in its body (functions included), except
    under ``if TYPE_CHECKING:``, which never runs."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + [base] * bool(base))
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate.startswith("smptune.") and candidate != name:
                found.add(candidate)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _room(module: str) -> str:
    return module.split(".")[1]


def test_every_room_has_a_floor() -> None:
    rooms = {_room(m) for m in _modules() if m != "smptune"}
    assert not rooms - set(FLOORS), f"place these in FLOORS: {sorted(rooms - set(FLOORS))}"


def test_rooms_import_only_from_their_floor_or_below() -> None:
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in _graph().items()
        if source != "smptune"
        for target in targets
        if FLOORS.get(_room(target), 99) > FLOORS.get(_room(source), -1)
    )
    assert not upward, "imports upward:\n" + "\n".join(upward)


def test_no_module_imports_itself_back() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_outgrows_600_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines: split it by role"


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    """The import reader sees an import inside a function and skips TYPE_CHECKING ones."""
    (tmp_path / "m.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from smptune.cli import producer\n"
        "def f():\n    from smptune.worker.app import app\n"
    )
    modules = {"smptune.worker.app": tmp_path, "smptune.cli.producer": tmp_path}
    assert _imports("smptune.queue.m", tmp_path / "m.py", modules) == {"smptune.worker.app"}

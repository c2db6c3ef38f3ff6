"""The shape of the code, checked: no import cycle in scheduler/, the store sealed behind its
package, every state change a named transition, imports at the top of modules."""

from __future__ import annotations

import ast
from pathlib import Path

import scheduler

ROOT = Path(scheduler.__file__).parent
# lazy imports that keep a command's start fast (`igsched list` never loads the daemon, the
# emulator or rich) or an optional dependency out of the way
LAZY_IMPORTS_ALLOWED = {"cli.py", "emulator/mediafiles.py"}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


MODULES = _modules()


def _imported(tree: ast.Module, module: str) -> set[str]:
    """The scheduler modules `module` imports (a package import counts as its __init__)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative
                parts = module.split(".")[: -node.level]
                base = ".".join([*parts, node.module])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in names if n in MODULES}


def _graph() -> dict[str, set[str]]:
    return {m: _imported(t, m) - {m} for m, t in MODULES.items()}


def test_no_import_cycle_in_scheduler() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep):], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_nothing_outside_the_store_imports_a_store_submodule() -> None:
    offenders = [
        (m, dep) for m, deps in _graph().items() if not m.startswith("scheduler.store")
        for dep in deps if dep.startswith("scheduler.store.")
    ]
    assert offenders == []


def test_no_transaction_is_opened_outside_the_store() -> None:
    offenders = []
    for m, tree in MODULES.items():
        if m.startswith("scheduler.store"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("tx", "_tx", "read", "_read", "engine"):
                base = ast.unparse(node.value)
                if "store" in base:
                    offenders.append((m, ast.unparse(node)))
    assert offenders == []


def test_no_state_keyword_in_the_pipeline_or_engagement() -> None:
    """A post's or an action's state changes only through a named transition (lifecycle.POSTS,
    lifecycle.ACTIONS)."""
    offenders = []
    for m, tree in MODULES.items():
        if m.startswith(("scheduler.pipeline", "scheduler.engage")):
            offenders += [
                (m, node.lineno) for node in ast.walk(tree) if isinstance(node, ast.Call)
                for kw in node.keywords if kw.arg == "state"
            ]
    assert offenders == []


def test_imports_are_at_the_top_of_modules() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in LAZY_IMPORTS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                offenders += [
                    (rel, node.name) for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)
                ]
    assert offenders == []


def test_the_pipeline_guards_no_graph_call_by_hand() -> None:
    """The pause guard is the Graph client's pre-call hook; no raw request bypasses the
    client's methods."""
    for m, tree in MODULES.items():
        if not m.startswith("scheduler.pipeline"):
            continue
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert not {c for c in calls if c.endswith("check_pause") or c == "rt.graph.request"}, m

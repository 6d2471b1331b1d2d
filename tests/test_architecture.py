"""What the packages may import, read from their source with ``ast`` (nothing is imported).

No import cycles; crdt/ and storage_bridge/ never import collab_server/; crdt/ is pure (none of
the other packages, no I/O module); no module imports another module's private names. Outside
the shipped packages: bench/ never imports tests/ (their shared helpers are in devkit/), devkit/
imports neither, and the shipped packages import none of the three. jupyter_cs3/ never asks
which storage backend it has (``isinstance(..., CS3Storage)``): it goes through ``Sharing``.

Every ``import`` counts, also one deferred into a function body or under ``TYPE_CHECKING``: a
rule about what a package may depend on holds for all of its code.  ``from pkg import name``
is an import of the module ``pkg.name`` when that module exists, else of ``pkg`` itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("collab_server", "crdt", "storage_bridge", "jupyter_cs3")
# Modules that reach the network, the disk or the event loop; the document logic is pure.
IO_MODULES = frozenset({"socket", "asyncio", "sqlite3", "httpx", "grpc"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = package_modules()


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module name ``module``'s source imports (absolute, relative ones resolved)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in MODULES else base


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the four packages it imports."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph[module] = {
            name for name in imported_names(module, path) if name in MODULES and name != module
        }
    return graph


def all_imports(package: str) -> Iterator[tuple[str, str]]:
    """(module, imported name) for every import in ``package``, also of outside modules."""
    for module, path in MODULES.items():
        if module == package or module.startswith(package + "."):
            for name in imported_names(module, path):
                yield module, name


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def in_packages(name: str, packages: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "crdt.merge" in graph and "collab_server.room" in graph
    assert "crdt.normalize" in graph["crdt.merge"]  # a relative import, resolved


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_crdt_and_storage_bridge_never_import_collab_server() -> None:
    offenders = [
        (module, name)
        for package in ("crdt", "storage_bridge")
        for module, name in all_imports(package)
        if in_packages(name, ["collab_server"])
    ]
    assert offenders == []


def test_crdt_imports_no_other_package_of_the_project() -> None:
    others = [p for p in PACKAGES if p != "crdt"]
    offenders = [(m, name) for m, name in all_imports("crdt") if in_packages(name, others)]
    assert offenders == []


def test_crdt_does_no_io() -> None:
    offenders = [(m, name) for m, name in all_imports("crdt") if in_packages(name, IO_MODULES)]
    assert offenders == []


def test_no_private_names_imported_across_modules() -> None:
    offenders = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and (
                node.level or in_packages(node.module or "", PACKAGES)
            ):
                offenders += [(module, a.name) for a in node.names if a.name.startswith("_")]
    assert offenders == []


def folder_imports(folder: str) -> Iterator[tuple[str, str]]:
    """(module, imported name) for every import in the ``.py`` files under ``folder``."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        module = module_name(path)
        for name in imported_names(module, path):
            yield module, name


def test_folder_imports_are_read() -> None:
    assert ("bench.servers", "devkit.hubproc") in set(folder_imports("bench"))


def test_bench_never_imports_tests() -> None:
    offenders = [(m, name) for m, name in folder_imports("bench") if in_packages(name, ["tests"])]
    assert offenders == []


def test_devkit_imports_neither_tests_nor_bench() -> None:
    offenders = [
        (m, name) for m, name in folder_imports("devkit") if in_packages(name, ["tests", "bench"])
    ]
    assert offenders == []


def test_shipped_packages_import_no_dev_code() -> None:
    offenders = [
        (module, name)
        for package in PACKAGES
        for module, name in all_imports(package)
        if in_packages(name, ["tests", "bench", "devkit"])
    ]
    assert offenders == []


BACKEND_CLASSES = frozenset({"CS3Storage", "LocalStorage"})


def backend_type_checks(source: str) -> list[int]:
    """Lines of ``isinstance(x, <backend class>)`` calls (also in a tuple, or as ``mod.Class``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance"):
            continue
        if len(node.args) != 2:
            continue
        kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
        names = {getattr(k, "id", None) or getattr(k, "attr", None) for k in kinds}
        if names & BACKEND_CLASSES:
            lines.append(node.lineno)
    return lines


def test_backend_type_checks_are_found() -> None:
    assert backend_type_checks("isinstance(s, (int, cs3.CS3Storage))") == [1]
    assert backend_type_checks("isinstance(s, Storage)") == []


def test_jupyter_cs3_never_asks_which_backend_it_has() -> None:
    offenders = [
        (module, line)
        for module, path in MODULES.items()
        if module.startswith("jupyter_cs3")
        for line in backend_type_checks(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]

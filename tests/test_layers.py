"""The import graph keeps the layers of docs/architecture.md: no module imports a layer above it, no file
imports itself through others, and the server's code needs neither the training loop nor export's runtimes."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

# top to bottom; packages on one row are independent of each other (neither imports the other)
LAYERS = [
    ("acom.cli",),
    ("acom.profiling",),
    ("acom.firmware_host",),
    ("acom.export",),
    ("acom.comparisons", "acom.runtime"),
    ("acom.training",),
    ("acom.baselines",),
    ("acom.corpora",),
    ("acom.core", "acom.codes", "acom.boards"),
    ("acom.errors",),
]
# what the server may import besides itself: the model core, the codes and the errors
RUNTIME_MAY_IMPORT = ("acom.core", "acom.codes", "acom.errors")
# heavy optional dependencies: imported only inside the functions that need them, never at a module's top
HEAVY = ("executorch", "ai_edge_litert", "litert_torch", "tflite_micro", "ethosu", "serial", "onnxruntime")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    g = grimp.build_graph("acom", include_external_packages=True)
    for m in [m for m in g.modules if m == "acom.tests" or m.startswith("acom.tests.")]:
        g.remove_module(m)  # the tests import everything; they are not a layer
    return g


def test_no_module_imports_a_layer_above_it(graph):
    layers = [grimp.Layer(*row, independent=True) for row in LAYERS]
    illegal = graph.find_illegal_dependencies_for_layers(layers=layers, containers=set())
    lines = [f"{d.importer} imports {d.imported}: " + "; ".join(
        " -> ".join([*sorted(r.heads), *r.middle, *sorted(r.tails)]) for r in d.routes) for d in illegal]
    assert not lines, "imports against the layers:\n" + "\n".join(lines)


def test_every_package_has_a_layer(graph):
    placed = {p for row in LAYERS for p in row}
    top = {".".join(m.split(".")[:2]) for m in graph.modules if m.startswith("acom.")}
    assert top <= placed, f"packages without a layer in LAYERS: {sorted(top - placed)}"


def test_no_file_circles(graph):
    acom = {m for m in graph.modules if m.split(".")[0] == "acom"}
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in acom} for m in acom}
    cycles = []
    for m in sorted(acom):  # a module on a cycle reaches itself
        for i in sorted(edges[m]):
            if i != m and graph.chain_exists(importer=i, imported=m):
                cycles.append(graph.find_shortest_chain(importer=i, imported=m))
    assert not cycles, "modules that import themselves through others:\n" + "\n".join(
        " -> ".join(c) for c in cycles if c)


def test_runtime_needs_only_the_core_and_the_codes(graph):
    runtime = {m for m in graph.modules if m.startswith("acom.runtime")}
    bad = sorted({(m, i) for m in runtime for i in graph.find_modules_directly_imported_by(m)
                  if i.startswith("acom") and i != "acom" and not i.startswith(("acom.runtime", *RUNTIME_MAY_IMPORT))})
    assert not bad, f"runtime imports outside the core and codes: {bad}"
    for heavy in ("executorch", "ai_edge_litert", "litert_torch", "tflite_micro"):
        if heavy in graph.modules:
            importers = {m for m in graph.find_modules_that_directly_import(heavy) if m.startswith("acom.runtime")}
            assert not importers, f"{heavy} imported by the server's code: {sorted(importers)}"


def _top_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of the imports run when the module loads: its body, and top-level if/try blocks."""
    out, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
        elif isinstance(node, (ast.If, ast.Try)):
            todo += [*node.body, *node.orelse, *getattr(node, "finalbody", []),
                     *(b for h in getattr(node, "handlers", []) for b in h.body)]
    return out


def test_heavy_dependencies_are_imported_where_used():
    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tests", "bench", ".venv", "build") or rel.parts[0].startswith("."):
            continue
        for line, module in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if module.split(".")[0] in HEAVY:
                found.append(f"{rel}:{line}: {module}")
    assert not found, ("heavy optional dependencies imported at module top (import them where used):\n"
                       + "\n".join(found))

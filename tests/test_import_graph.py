"""The package layout stays walkable: no import circles between files, no upward imports between packages.

Imports are read with ast (top level and inside functions alike: a lazy import is still a dependency).
The layers, lowest first, are `LAYERS`; a package may import only packages below it.
"""
import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "dllmq"
# lowest first; one name per top-level module or subpackage of dllmq
LAYERS = ("env", "models", "decoding", "likelihood", "eval", "tiny", "calibration", "quant", "activations",
          "paper", "sweeps", "lab", "viz", "exercises", "demo", "cli", "__main__")


def module_imports() -> dict:
    """dllmq module name -> the dllmq modules it imports."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("dllmq",) + path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                if target and target != name and not name.startswith(target + ".") and target != "dllmq":
                    graph[name].add(target)
    return {name: graph[name] for name in modules}


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> str:
    return module.split(".")[1]


def test_no_import_circles_between_files():
    assert cycles(module_imports()) == []


def test_every_package_has_a_layer():
    assert {layer_of(m) for m in module_imports() if m != "dllmq"} <= set(LAYERS)


def test_no_upward_imports_between_packages():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = [(m, t) for m, targets in module_imports().items() if m != "dllmq" for t in targets
              if rank[layer_of(t)] > rank[layer_of(m)]]
    assert upward == []


def test_the_checks_catch_a_circle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    rank = {name: i for i, name in enumerate(LAYERS)}
    assert rank[layer_of("dllmq.viz.plots")] > rank[layer_of("dllmq.quant.gptq")]


def test_nothing_registers_itself_on_import():
    """Presets are one explicit table: no module-level register(...) calls outside the serialization registry."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            call = node.value if isinstance(node, ast.Expr) else None
            if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) == "register":
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []

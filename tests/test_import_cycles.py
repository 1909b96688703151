"""No import cycles among kzoo's modules, counting imports inside functions: the
layers of the house (ARCHITECTURE.md) import downward only."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def module_imports(package_dir):
    """`{module: {kzoo modules it imports}}`, from every `import` statement,
    wherever it stands (a function body too)."""
    package_dir = pathlib.Path(package_dir)
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path

    def known(name):
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    edges = {}
    for module, path in modules.items():
        targets = set()
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = known(name)
                # A module importing a package above it (its __init__) is not a cycle.
                if target and target != module and not module.startswith(target + "."):
                    targets.add(target)
        edges[module] = targets
    return edges


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_kzoo_has_no_import_cycles():
    assert cycles(module_imports(ROOT / "kzoo")) == []


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from pkg.high import g\n")
    (package / "high.py").write_text("from . import low\n\ndef g():\n    pass\n")
    (package / "other.py").write_text("import pkg.low\n")
    assert cycles(module_imports(package)) == [["pkg.high", "pkg.low"]]

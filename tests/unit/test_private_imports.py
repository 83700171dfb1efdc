"""No module of the package reaches into another module's private names: a leading underscore says
"only this module relies on it", so that it can change without looking anywhere else."""
from __future__ import annotations

import ast
from pathlib import Path

import gitmodel

PACKAGE = Path(gitmodel.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _ours(module: str) -> bool:
    # another project's private module (llama_cpp._ggml) is a dependency chosen and commented where used
    return module == "gitmodel" or module.startswith("gitmodel.")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _dotted(node: ast.expr, modules: dict[str, str]) -> str | None:
    """The dotted name ``node`` stands for when it starts at an imported name (``gitmodel.refs``), else None."""
    if isinstance(node, ast.Name):
        return modules.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, modules)
        return f"{base}.{node.attr}" if base else None
    return None


def private_imports(text: str, importer: str, is_package: bool = False, shown: str = "") -> list[str]:
    """``shown:line: name`` of every private name module ``importer`` (source ``text``) takes from another
    module: ``from m import _x``, or ``m._x`` where ``m`` is a module it imported."""
    tree = ast.parse(text, shown or importer)
    found = []
    modules: dict[str, str] = {}   # local name -> module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node.module, node.level, importer, is_package)
            for alias in node.names:
                if _private(alias.name) and _ours(source) and source != importer:
                    found.append(f"{shown}:{node.lineno}: {source}.{alias.name}")
                modules[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            # `import a.b` binds `a`; `import a.b as c` binds `c` to `a.b`
            for alias in node.names:
                modules[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            module = _dotted(node.value, modules)
            if module and _ours(module) and module != importer:
                found.append(f"{shown}:{node.lineno}: {module}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_of_another():
    found = [hit for path in sorted(PACKAGE.rglob("*.py"))
             for hit in private_imports(path.read_text(encoding="utf-8"), _module_name(path),
                                        path.name == "__init__.py", str(path.relative_to(PACKAGE)))]
    assert found == []


def test_the_check_sees_every_form():
    # a check that finds nothing must be a check that can find something
    text = ("from gitmodel.evaluate import _settings\nfrom gitmodel import dvcyaml\n"
            "from . import store as st\nfrom .cli.app import _ok as fine\nimport gitmodel.refs\n"
            "x = dvcyaml._eval_stage\ny = st._private\nz = dvcyaml.__name__\n"
            "def f():\n    from gitmodel.verify import _object_file\n"
            "def _own():\n    return _own\n"
            "w = gitmodel.refs._grammar\nself = object()\nv = self._anything\n")
    assert private_imports(text, "gitmodel.probe", shown="probe.py") == [
        "probe.py:1: gitmodel.evaluate._settings", "probe.py:4: gitmodel.cli.app._ok",
        "probe.py:10: gitmodel.verify._object_file",
        "probe.py:6: gitmodel.dvcyaml._eval_stage", "probe.py:7: gitmodel.store._private",
        "probe.py:13: gitmodel.refs._grammar"]
    # a module's own private names, and a relative import of its own package's, are its own business
    assert private_imports("from gitmodel.probe import _x\nfrom llama_cpp import _ggml\n", "gitmodel.probe") == []

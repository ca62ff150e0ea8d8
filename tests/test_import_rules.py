"""The import rules of DESIGN.md, checked on the source (not by convention)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "pyqtgraph", "PyQt5", "PyQt6", "qtpy")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


def _offenders(files, forbidden) -> list[str]:
    bad = []
    for path in files:
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def test_sources_exist():
    assert len(_sources("lstmviz", "engines", "datasets")) > 10


def test_qt_only_inside_lstmviz_qt():
    files = [p for p in _sources("lstmviz", "engines", "datasets") if "qt" not in p.relative_to(ROOT).parts[:2]]
    assert _offenders(files, QT_MODULES) == []


def test_engines_and_datasets_never_import_qt_or_analysis():
    assert _offenders(_sources("engines", "datasets"), ("lstmviz.qt", "lstmviz.analysis")) == []


def test_recording_never_imports_analysis():
    assert _offenders(_sources("lstmviz/recording"), ("lstmviz.analysis", "lstmviz.qt")) == []


@pytest.mark.parametrize("module", ["format", "writer", "reader", "validation", "migrations", "summary"])
def test_file_format_modules_do_not_need_torch(module):
    path = ROOT / "lstmviz" / "recording" / f"{module}.py"
    assert path.exists(), path
    assert _offenders([path], ("torch",)) == []


def test_datasets_do_not_need_torch():
    assert _offenders(_sources("datasets"), ("torch",)) == []


def test_every_package_directory_is_installed():
    """A sub-package missing from pyproject's package list would work editable and vanish in a wheel."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    declared = set(config["packages"])
    found = set()
    for package, directory in mapping.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            found.add(".".join([package, *init.parent.relative_to(ROOT / directory).parts]))
    assert found == declared


def _package_graph(package: str, directory: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, anywhere in its source (function-level imports too)."""
    modules = {p.stem: p for p in (ROOT / directory).glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    targets = [node.module] if node.module else [a.name for a in node.names]
                elif node.level == 0 and node.module and (node.module + ".").startswith(package + "."):
                    rest = node.module[len(package) + 1:]
                    targets = [rest] if rest else [a.name for a in node.names]
                else:
                    continue
            elif isinstance(node, ast.Import):
                targets = [a.name[len(package) + 1:] for a in node.names if a.name.startswith(package + ".")]
            else:
                continue
            found.update(t.split(".")[0] for t in targets if t and t.split(".")[0] in modules)
        graph[name] = found - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_recording_modules_import_each_other_without_a_circle():
    """reader -> upgrades <- validation <- migrations: nothing below imports what is above it, not even
    inside a function (issue 12, point 6)."""
    graph = _package_graph("lstmviz.recording", "lstmviz/recording")
    assert {"reader", "validation", "migrations", "upgrades"} <= set(graph)
    assert "migrations" not in graph["reader"] and "migrations" not in graph["validation"]
    assert not graph["upgrades"] & {"reader", "validation", "migrations"}
    assert _cycles(graph) == []


def test_the_hook_layer_imports_torch_and_nothing_of_files_analysis_or_gui():
    files = _sources("lstmviz/hooks")
    assert files and any("torch" in _imports(p) for p in files)
    forbidden = ("h5py", *QT_MODULES, "lstmviz.recording", "lstmviz.analysis", "lstmviz.qt", "lstmviz.engines",
                 "lstmviz.datasets")
    assert _offenders(files, forbidden) == []


def test_engines_reach_taps_through_the_hook_layer_not_the_recording_package():
    assert _offenders(_sources("engines"), ("lstmviz.recording", "h5py")) == []


def _imported_by(statement: str) -> set[str]:
    import json
    import subprocess
    import sys

    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_importing_and_building_an_engine_does_not_import_h5py():
    loaded = _imported_by("from lstmviz.engines import build_engine\n"
                          "import lstmviz.engines.recurrent.lstm, lstmviz.engines.recurrent.gru\n"
                          "build_engine('gru', vocab_size=5, hidden_size=4, num_layers=1)")
    assert "torch" in loaded and "lstmviz.hooks" in loaded
    assert "h5py" not in loaded and not any(m.startswith(("lstmviz.recording", "lstmviz.analysis", "PySide6"))
                                            for m in loaded)


def test_listing_engine_families_does_not_import_torch():
    loaded = _imported_by("from lstmviz.engines import families\nassert 'language-model' in families.names()")
    assert "torch" not in loaded and "h5py" not in loaded


def test_the_built_in_families_are_declared_as_entry_points_like_plugins():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["entry-points"]["lstmviz.families"]
    assert declared == {"language-model": "lstmviz.engines.families.language_model:FAMILY",
                        "graph": "lstmviz.engines.families.graph:FAMILY",
                        "image": "lstmviz.engines.families.image:FAMILY",
                        "seq2seq": "lstmviz.engines.families.seq2seq:FAMILY",
                        "knowledge-lm": "lstmviz.engines.families.knowledge_lm:FAMILY",
                        "strokes": "lstmviz.engines.families.strokes:FAMILY"}


def test_the_workspace_model_never_imports_qt():
    """The state model (lstmviz/workspace) is Qt-free: a script, the CLI or a test can hold a workspace."""
    assert _offenders(_sources("lstmviz/workspace"), (*QT_MODULES, "lstmviz.qt")) == []


def test_panel_descriptions_and_states_are_qt_free():
    """What a panel registers (its description and its part of the workspace file) imports no Qt, so the
    registry and the workspace file can be read without a GUI."""
    qt = ROOT / "lstmviz" / "qt"
    files = [qt / "panels.py", qt / "panel_description.py"]
    files += [p for p in qt.glob("*/__init__.py")] + [p for p in qt.glob("*/state.py")]
    assert len(files) >= 2 + 5 + 2
    assert _offenders(files, QT_MODULES) == []


def test_importing_the_panel_registry_and_the_workspace_model_loads_no_qt():
    import subprocess
    import sys

    code = ("import sys; import lstmviz.qt.panels, lstmviz.workspace.model, lstmviz.workspace.file; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _all_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``path`` imports anywhere (inside functions too); ``from pkg import mod``
    counts as importing ``pkg.mod``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found & known


def test_the_gui_and_the_workspace_model_import_without_cycles():
    """No import cycle among lstmviz.qt and lstmviz.workspace modules, counting imports inside functions
    and for type checking (which would only hide one): what both sides need lives a level down."""
    files = _sources("lstmviz/qt", "lstmviz/workspace")
    names = {_module_name(p): p for p in files}
    graph = {name: _all_imports(path, set(names)) - {name} for name, path in names.items()}
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []

"""The CLI, the app, the demo and the exporter use only the package-level API of each stage.

Their imports are parsed with ``ast``: an import from below ``motifcat.<package>`` (e.g.
``motifcat.ingest.io``), a private name, or a name that the package does not list in
``__all__`` fails, and so does attribute access such as ``query._read`` on an imported module.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import motifcat

ROOT = Path(motifcat.__file__).resolve().parent
CONSUMERS = sorted(
    [ROOT / "cli.py", ROOT / "demo.py", ROOT / "export.py", *(ROOT / "app").rglob("*.py")]
)
TOP_LEVEL = {p.stem for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _public(module: str) -> set[str] | None:
    """``__all__`` of a motifcat module (plus its top-level subpackages for ``motifcat``)."""
    names = getattr(importlib.import_module(module), "__all__", None)
    if module == "motifcat":
        return set(names or ()) | TOP_LEVEL
    return None if names is None else set(names)


def violations(source: str, importer: str, is_package: bool = False) -> list[str]:
    """Every import or attribute use in ``source`` below the public API of a stage."""
    own = importer.split(".")[:2]  # a package may import its own modules (the app its views)
    found: list[str] = []
    bound: dict[str, str] = {}  # local name -> motifcat module it is bound to

    def check_module(mod: str, line: int) -> bool:
        parts = mod.split(".")
        if parts[0] != "motifcat":
            return False
        if len(parts) > 2 and parts[:2] != own:
            found.append(f"line {line}: {mod} is below the package {'.'.join(parts[:2])}")
        if any(p.startswith("_") for p in parts):
            found.append(f"line {line}: {mod} is private")
        return True

    def check_name(mod: str, name: str, line: int) -> None:
        if name.startswith("_") and name != "__version__":
            found.append(f"line {line}: {mod}.{name} is private")
            return
        if mod.split(".")[:2] == own:
            return
        public = _public(mod)
        if public is not None and name not in public:
            found.append(f"line {line}: {mod}.{name} is not in {mod}.__all__")

    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = _resolve(node, importer, is_package)
            if check_module(mod, node.lineno):
                for alias in node.names:
                    check_name(mod, alias.name, node.lineno)
                    sub = f"{mod}.{alias.name}"
                    if alias.name in (_public(mod) or ()) and mod == "motifcat":
                        bound[alias.asname or alias.name] = sub
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if check_module(alias.name, node.lineno) and alias.asname:
                    bound[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in bound):
            check_name(bound[node.value.id], node.attr, node.lineno)
    return found


@pytest.mark.parametrize("path", CONSUMERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_consumers_use_only_package_level_names(path):
    name = _module_name(path)
    assert violations(path.read_text(), name, path.name == "__init__.py") == []


def test_the_checker_catches_deep_private_and_unlisted_names():
    source = (
        "from motifcat.ingest.io import load_image\n"
        "from .query.queries import _read\n"
        "from .catalog import _relabel\n"
        "from motifcat.ingest import nothing_public\n"
        "from motifcat import query\n"
        "query._frame\n"
        "from .ingest import analyze, load_image\n"  # fine
        "from motifcat import __version__, export\n"  # fine
    )
    found = violations(source, "motifcat.cli")
    assert found == [
        "line 1: motifcat.ingest.io is below the package motifcat.ingest",
        "line 2: motifcat.query.queries is below the package motifcat.query",
        "line 2: motifcat.query.queries._read is private",
        "line 3: motifcat.catalog._relabel is private",
        "line 4: motifcat.ingest.nothing_public is not in motifcat.ingest.__all__",
        "line 6: motifcat.query._frame is private",
    ]


def test_every_listed_name_exists():
    for package in ("ingest", "catalog", "query", "datasets"):
        module = importlib.import_module(f"motifcat.{package}")
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"motifcat.{package}.__all__ lists {missing}"
    from motifcat import ingest

    for name in ("load_image", "analyze", "AnalysisParams", "Analysis", "Micrograph",
                 "Columns", "save_analysis", "load_analysis"):
        assert name in ingest.__all__

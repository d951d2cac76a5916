"""The core depends on the engine port, never on a plugin: only the composition root imports the adapters and
the domain packages."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
COMPOSITION_ROOT = ROOT / "gateway" / "bootstrap.py"
PLUGIN_PACKAGES = ("adapters", "incidents", "analytics")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_core_module_imports_an_adapter_or_a_domain_package() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0] in PLUGIN_PACKAGES)
        for path in sorted((ROOT / "gateway").rglob("*.py"))
        if path != COMPOSITION_ROOT
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_the_composition_root_wires_the_incident_center() -> None:
    assert "incidents.center" in imported_modules(COMPOSITION_ROOT)


def test_the_import_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from adapters.embedded import EmbeddedAdapter\n    import incidents.center\n")
    assert {"adapters.embedded", "incidents.center"} <= imported_modules(probe)

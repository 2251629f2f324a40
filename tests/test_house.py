"""The house rules a newcomer can rely on: which modules may import TensorFlow and Streamlit, the
public API, and docs/architecture.md matching the tree."""

import ast
import re
import subprocess
import sys

import pytest

import gradviz
from support.helpers import ROOT

PACKAGE = ROOT / "gradviz"
TENSORFLOW_FREE = ["gradviz.ui", "gradviz.ui.pages.explorer", "gradviz.ui.pages.sweeps", "gradviz.signal.theory",
                   "gradviz.signal.charts", "gradviz.charts", "gradviz.sweeps.charts", "gradviz.diagnosis.diagnose",
                   "gradviz.serving.limits", "gradviz.serving.cost", "gradviz.cli", "gradviz"]


def modules() -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in PACKAGE.rglob("*.py"))


def imported_names(module: str) -> set[str]:
    """Every module `module`'s source imports, at any depth of its code."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_pages_theory_charts_and_diagnosis_load_without_tensorflow():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in TENSORFLOW_FREE)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_only_the_ui_imports_streamlit():
    offenders = [m for m in modules() if not m.startswith("gradviz.ui")
                 and any(name.split(".")[0] == "streamlit" for name in imported_names(m))]
    assert offenders == []


def test_tensorflow_and_keras_are_imported_only_through_tf_setup():
    offenders = [m for m in modules() if m != "gradviz.training.tf_setup"
                 and any(name.split(".")[0] in ("tensorflow", "keras") for name in imported_names(m))]
    assert offenders == []
    importers = sorted(m for m in modules() if "gradviz.training.tf_setup" in imported_names(m))
    allowed = ("gradviz.training.", "gradviz.signal.probe", "gradviz.signal.family", "gradviz.signal.sharpness",
               "gradviz.data", "gradviz.yourmodel.")
    assert all(m.startswith(allowed) for m in importers), importers


@pytest.mark.parametrize("name", gradviz.__all__)
def test_every_public_name_imports_and_says_what_it_is(name):
    value = getattr(gradviz, name)
    assert value.__doc__ and len(value.__doc__.strip()) > 20
    if callable(value) and not isinstance(value, type):
        assert "Returns:" in value.__doc__ or "Args:" in value.__doc__, name


def test_architecture_doc_names_every_module_and_every_named_module_exists():
    text = (ROOT / "docs" / "architecture.md").read_text()
    layout = text.split("```")[1]
    named, folder = set(), ""
    for line in layout.splitlines():
        first = line.split()[0] if line.split() else ""
        if not line.startswith(" "):  # a top-level entry: a folder of gradviz's, a module, or something else
            folder = first if first.startswith("gradviz/") and first.endswith("/") else ""
        if first.startswith("gradviz/") and first.endswith(".py"):
            named.add(first)
        elif line.startswith("  ") and folder and not line.startswith("    "):
            named |= {folder + word for word in re.findall(r"[\w/]+\.py", first)}
        elif line.startswith("    ") and folder:  # ui/pages/, listed on one line
            named |= {f"{folder}pages/{word}" for word in re.findall(r"\w+\.py", line)}
    actual = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
              if p.name != "__init__.py" or p.parent == PACKAGE}
    assert named - actual == set(), "named in docs/architecture.md but missing"
    assert actual - named == set(), "in the tree but not in docs/architecture.md"
    packages = {p.parent.relative_to(ROOT) for p in PACKAGE.rglob("__init__.py")}
    unnamed = [p for p in packages if f"{p}/" not in layout and f"  {p.name}/ " not in layout]
    assert unnamed == []


def test_the_code_cites_contracts_the_repository_carries():
    for path in list(PACKAGE.rglob("*.py")) + [ROOT / "README.md"]:
        text = path.read_text()
        assert "DESIGN.md" not in text, path
        for cited in re.findall(r"docs/[\w-]+\.md", text):
            assert (ROOT / cited).is_file(), (path, cited)

"""The package declares what it imports, and the pinned versions agree with each other.

Every module that src/cae imports (at the top of a file or inside a function) is either
the standard library, ``cae`` itself, or a distribution that pyproject.toml declares in
``[project].dependencies`` or in an extra of ``[project.optional-dependencies]``. The
module → distribution map (``sklearn`` → scikit-learn, ``PIL`` → pillow, ``yaml`` →
PyYAML, …) comes from the installed packages' metadata. requirements.txt pins every
declared distribution, and the pre-commit hooks run the versions it pins.
"""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = "cae"
# pre-commit hook repository → the package in requirements.txt whose version it runs
HOOK_PACKAGES = {
    "https://github.com/astral-sh/ruff-pre-commit": "ruff",
    "https://github.com/kynan/nbstripout": "nbstripout",
}


def imported_modules(package_dir: Path) -> dict[str, set[str]]:
    """Top-level names of every absolute import under ``package_dir`` → the files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], set()).add(path.relative_to(package_dir).as_posix())
    return found


def declared_distributions(pyproject: dict) -> set[str]:
    """Canonical names of the dependencies and of every optional extra's dependencies."""
    project = pyproject["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {canonicalize_name(Requirement(spec).name) for spec in specs}


def undeclared_imports(package_dir: Path, pyproject: dict, distributions: dict[str, list[str]]) -> list[str]:
    """One line per third-party module that no declared distribution provides."""
    declared = declared_distributions(pyproject)
    optional = {
        canonicalize_name(Requirement(spec).name)
        for extra in pyproject["project"].get("optional-dependencies", {}).values()
        for spec in extra
    }
    problems = []
    for module, files in sorted(imported_modules(package_dir).items()):
        if module == FIRST_PARTY or module in sys.stdlib_module_names:
            continue
        providers = {canonicalize_name(d) for d in distributions.get(module, [])}
        where = ", ".join(sorted(files))
        if not providers and canonicalize_name(module) in optional:
            continue  # an optional extra that is not installed (bm3d): its own name is its module's
        if not providers:
            problems.append(f"{module} (imported in {where}): no installed distribution provides it")
        elif not providers & declared:
            problems.append(
                f"{module} (imported in {where}): declare {' or '.join(sorted(providers))} in pyproject.toml"
            )
    return problems


def pinned_versions(requirements: str) -> dict[str, str]:
    """Canonical name → version of each ``name==version`` line of a requirements file."""
    pins = {}
    for line in requirements.splitlines():
        spec = line.split("#")[0].strip()
        if spec and not spec.startswith("-"):
            req = Requirement(spec)
            exact = [s.version for s in req.specifier if s.operator == "=="]
            if exact:
                pins[canonicalize_name(req.name)] = exact[0]
    return pins


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_src_imports_is_declared(pyproject):
    problems = undeclared_imports(ROOT / "src" / FIRST_PARTY, pyproject, packages_distributions())
    assert not problems, "\n".join(problems)


def _package(tmp_path: Path, code: str) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("import os\nfrom cae.errors import CaeError\n")
    (pkg / "sub" / "mod.py").write_text(code)
    return pkg


PROVIDERS = {"sklearn": ["scikit-learn"], "PIL": ["pillow"], "bm3d": ["bm3d"], "yaml": ["PyYAML"]}


def test_an_undeclared_import_inside_a_function_is_named_with_its_distribution(tmp_path):
    pkg = _package(tmp_path, "def f():\n    from sklearn.decomposition import PCA\n    import PIL.Image\n")
    pyproject = {"project": {"dependencies": ["pillow>=10"]}}
    assert undeclared_imports(pkg, pyproject, PROVIDERS) == [
        "sklearn (imported in sub/mod.py): declare scikit-learn in pyproject.toml"
    ]


def test_a_module_no_installed_distribution_provides_is_named(tmp_path):
    pkg = _package(tmp_path, "import not_a_real_module\n")
    assert undeclared_imports(pkg, {"project": {"dependencies": []}}, PROVIDERS) == [
        "not_a_real_module (imported in sub/mod.py): no installed distribution provides it"
    ]


def test_an_optional_extra_declares_a_package_and_names_are_compared_canonically(tmp_path):
    pkg = _package(tmp_path, "import bm3d\nimport yaml\n")
    pyproject = {"project": {"dependencies": ["pyyaml"], "optional-dependencies": {"bm3d": ["bm3d>=4"]}}}
    assert undeclared_imports(pkg, pyproject, PROVIDERS) == []
    del pyproject["project"]["optional-dependencies"]
    assert undeclared_imports(pkg, pyproject, PROVIDERS) == [
        "bm3d (imported in sub/mod.py): declare bm3d in pyproject.toml"
    ]


def test_requirements_pin_every_declared_distribution(pyproject):
    """Every dependency is pinned; an optional extra (bm3d: a non-commercial licence) is not
    installed by requirements.txt, and pins its version in pyproject itself."""
    pins = pinned_versions((ROOT / "requirements.txt").read_text())
    required = {canonicalize_name(Requirement(spec).name) for spec in pyproject["project"]["dependencies"]}
    unpinned = sorted(required - pins.keys())
    extras = [Requirement(spec) for extra in pyproject["project"]["optional-dependencies"].values() for spec in extra]
    assert all(str(r.specifier).startswith("==") for r in extras), extras
    assert not unpinned, f"declared in pyproject.toml but not pinned in requirements.txt: {unpinned}"


def test_pre_commit_hooks_run_the_pinned_versions():
    pins = pinned_versions((ROOT / "requirements.txt").read_text())
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    revs = {repo["repo"]: repo["rev"] for repo in config["repos"]}
    assert revs.keys() == HOOK_PACKAGES.keys()
    for url, package in HOOK_PACKAGES.items():
        assert re.sub(r"^v", "", revs[url]) == pins[package], url

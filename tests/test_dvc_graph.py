"""dvc.yaml cannot go stale: each stage's deps list every file of its code, and its params
every key it reads.

Worked out here from the code alone, independently of tools/dvc_deps.py (which writes
dvc.yaml): each stage's transitive ``cae.*`` import closure, read from the source (AST;
imports inside functions included, and the packages' ``__init__.py`` that an import runs),
and the params keys its module reads (every ``params.a.b`` attribute chain, through
aliases such as ``cfg = params.anomaly``, resolved against the schema).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cae.config import Params, Section

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DVC_YAML = ROOT / "dvc.yaml"


def _stages() -> dict[str, dict]:
    stages = yaml.safe_load(DVC_YAML.read_text())["stages"]
    return {name: stage for name, stage in stages.items() if "cae.stages." in str(stage.get("cmd", ""))}


STAGES = _stages()


def _module(stage: str) -> str:
    return re.search(r"-m (cae\.stages\.\w+)", STAGES[stage]["cmd"]).group(1)


def _file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _tree(module: str) -> ast.Module:
    return ast.parse(_file(module).read_text())


# --------------------------------------------------------------------------- the import closure


def closure(module: str) -> set[str]:
    """Repository paths of ``module`` and of every cae module it can import, transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # `import a.b.c` runs a/__init__, a/b/__init__, then c
            prefix = ".".join(parts[:k])
            if prefix in seen or _file(prefix) is None:
                continue
            seen.add(prefix)
            path = _file(prefix)
            package = prefix if path.name == "__init__.py" else prefix.rpartition(".")[0]
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    todo += [a.name for a in node.names if a.name.startswith("cae")]
                elif isinstance(node, ast.ImportFrom):
                    origin = node.module or ""
                    if node.level:
                        origin = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [origin])
                    if origin.split(".")[0] == "cae":
                        # `from cae import runtime`: a submodule when it has a file
                        todo += [origin, *(f"{origin}.{a.name}" for a in node.names)]
    return {_file(m).relative_to(ROOT).as_posix() for m in seen}


def _code_deps(stage: str) -> set[str]:
    return {d for d in STAGES[stage].get("deps", []) if isinstance(d, str) and d.startswith("src/")}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_code_deps_are_the_import_closure(stage):
    needed, listed = closure(_module(stage)), _code_deps(stage)
    missing, extra = sorted(needed - listed), sorted(listed - needed)
    assert not missing, (
        f"dvc.yaml stage {stage}: deps miss {missing} (imported by {_module(stage)}); run `make dvc-deps`"
    )
    assert not extra, f"dvc.yaml stage {stage}: deps list {extra}, which it never imports; run `make dvc-deps`"


def test_the_closure_follows_function_local_and_package_imports():
    """The stages import their heavy modules inside main(): those count, as do the
    packages' __init__.py and `from cae import runtime`."""
    found = closure("cae.stages.plots")
    assert {"src/cae/__init__.py", "src/cae/stages/__init__.py", "src/cae/errors.py"} <= found
    assert {"src/cae/runtime.py", "src/cae/model.py", "src/cae/plots.py"} <= found  # imported inside main()
    assert "src/cae/stages/train.py" not in found and "src/cae/cli.py" not in found


# --------------------------------------------------------------------------- params read


def _field_section(model: type[Section], name: str) -> type[Section] | None:
    """The Section class of field ``name`` of ``model`` when it is one (e.g. anomaly.model)."""
    annotation = model.model_fields[name].annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, Section) else None


def _resolve(model: type[Section], keys: list[str], attrs: list[str]) -> tuple[list[str], type[Section] | None]:
    """Follow ``attrs`` through the schema from ``model`` (at ``keys``): fields only; the
    first attribute that is no field (a method, a property) ends the key, whose whole
    value it may read."""
    for attr in attrs:
        if model is None or attr not in model.model_fields:
            return keys, None
        keys, model = [*keys, attr], _field_section(model, attr)
    return keys, model


def _chain(node: ast.AST) -> tuple[str, list[str]] | None:
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id, attrs[::-1]) if isinstance(node, ast.Name) else None


def params_reads(tree: ast.Module) -> tuple[set[str], list[str]]:
    """(the dotted params keys the module reads, its uses of the whole ``params`` object).

    Roots are the name ``params`` and the names assigned from it (``cfg = params.anomaly``;
    ``a, b = params.x, params.y``). A bare root passed on reads its whole key; the whole
    ``params`` may only be passed to a function of the module itself whose argument is
    also named ``params`` (its reads are then in this module too).
    """
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    functions = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    aliases: dict[str, tuple[list[str], type[Section] | None]] = {"params": ([], Params)}
    alias_values: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        pairs = (
            list(zip(target.elts, value.elts, strict=False))
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            else [(target, value)]
        )
        for t, v in pairs:
            chain = _chain(v)
            if isinstance(t, ast.Name) and chain and chain[0] in aliases and chain[1]:
                keys, model = aliases[chain[0]]
                aliases[t.id] = _resolve(model, keys, chain[1])
                alias_values.add(id(v))
    reads, whole = set(), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or node.id not in aliases or not isinstance(node.ctx, ast.Load):
            continue
        top: ast.AST = node
        while isinstance(parents.get(top), ast.Attribute):
            top = parents[top]
        if id(top) in alias_values:
            continue
        keys, model = aliases[node.id]
        attrs = _chain(top)[1] if top is not node else []
        key = ".".join(_resolve(model, keys, attrs)[0])
        if key:
            reads.add(key)
            continue
        call = parents.get(node)
        if isinstance(call, ast.Call) and node in call.args and isinstance(call.func, ast.Name):
            f = functions.get(call.func.id)
            position = call.args.index(node)
            if f is not None and position < len(f.args.args) and f.args.args[position].arg == "params":
                continue
        whole.append(f"line {node.lineno}: {ast.unparse(parents.get(top, top))}")
    return reads, whole


def _covered(key: str, by: list[str] | tuple[str, ...]) -> bool:
    return any(key == d or key.startswith(f"{d}.") for d in by)


def _declared(stage: str) -> list[str]:
    return [p for p in STAGES[stage].get("params", []) if isinstance(p, str)]


def _untracked(stage: str) -> tuple[str, ...]:
    for node in _tree(_module(stage)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "PARAMS_UNTRACKED" for t in node.targets):
            return ast.literal_eval(node.value)
    return ()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_params_list_every_key_the_stage_reads(stage):
    reads, whole = params_reads(_tree(_module(stage)))
    assert not whole, f"{_module(stage)} passes the whole params on ({whole}): pass the sections the callee uses"
    declared = _declared(stage)
    missing = sorted(k for k in reads if not _covered(k, declared) and not _covered(k, _untracked(stage)))
    assert not missing, f"dvc.yaml stage {stage}: params miss {missing}, read by {_module(stage)}"
    unread = [d for d in declared if not any(_covered(k, [d]) or _covered(d, [k]) for k in reads)]
    assert not unread, f"dvc.yaml stage {stage}: params list {unread}, which {_module(stage)} never reads"
    assert not set(declared) & set(_untracked(stage))


def test_the_params_reader_follows_aliases_and_flags_the_whole_params():
    code = """
def helper(params):
    return params.latent.samples

def main(params):
    cfg, noise = params.anomaly, params.noise
    m = cfg.model
    fit(m.filters, cfg.epochs, noise.test_level, params.model.model_copy())
    helper(params)
    train(params)
    return params.model_dump()
"""
    reads, whole = params_reads(ast.parse(code))
    assert reads == {"latent.samples", "anomaly.model.filters", "anomaly.epochs", "noise", "model"}
    assert [w.split(":")[0] for w in whole] == ["line 10", "line 11"]  # train(params), params.model_dump()


def test_no_key_is_read_but_not_a_dependency():
    """A stage module may exempt a key it reads from its dvc.yaml params (``PARAMS_UNTRACKED``)
    only with an argument written here; none does now."""
    assert {stage: _untracked(stage) for stage in STAGES if _untracked(stage)} == {}


# --------------------------------------------------------------------------- the generator


def _generator(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/dvc_deps.py"), *args], capture_output=True, text=True, cwd=cwd
    )


def test_dvc_yaml_is_what_the_generator_writes():
    proc = _generator("--check")
    assert proc.returncode == 0, f"{proc.stderr}\n{proc.stdout}"


def test_the_generator_finds_a_stale_dvc_yaml_and_rewrites_only_code_deps_and_params(tmp_path):
    text = DVC_YAML.read_text()
    stale = text.replace("      - src/cae/data.py\n", "", 1).replace("      - distribute\n", "      - distributed\n", 1)
    stale = stale.replace("      - src/cae/config.py\n", "      - src/cae/config.py\n      - src/cae/cli.py\n", 1)
    assert stale != text
    path = tmp_path / "dvc.yaml"
    path.write_text(stale)
    proc = _generator("--check", "--file", str(path))
    assert proc.returncode == 1
    assert "dvc.yaml is out of date" in proc.stderr and "run `make dvc-deps`" in proc.stderr
    assert "+      - src/cae/data.py" in proc.stdout and "-      - src/cae/cli.py" in proc.stdout
    assert path.read_text() == stale  # --check changes nothing
    assert _generator("--file", str(path)).returncode == 0
    fresh = tmp_path / "fresh" / "dvc.yaml"
    fresh.parent.mkdir()
    fresh.write_text(text)
    assert _generator("--file", str(fresh)).returncode == 0
    assert path.read_text() == fresh.read_text()  # comments, data deps, outs and the rest as they were
    assert _generator("--check", "--file", str(path)).returncode == 0


def test_the_generator_keeps_data_deps_comments_and_outs_of_any_shape(tmp_path):
    """Only the src/ entries of deps and the params list are the generator's; a stage
    with metrics and plots keys, or without params, keeps them."""
    path = tmp_path / "dvc.yaml"
    path.write_text(
        "stages:\n"
        "  plots:\n"
        "    cmd: python -m cae.stages.plots\n"
        "    deps:\n"
        "      # the model and the data\n"
        "      - models/autoencoder.keras\n"
        "      - src/cae/old.py\n"
        "      - data/prepared\n"
        "    metrics:\n"
        "      - metrics/x.json:\n"
        "          cache: false\n"
        "    plots:\n"
        "      - plots/denoising.png\n"
        "  other:\n"
        "    cmd: echo hello\n"
        "    deps:\n"
        "      - src/cae/old.py\n"
        "\n"
        "plots:\n"
        "  - plots/denoising.png\n"
    )
    assert _generator("--file", str(path)).returncode == 0
    stage = yaml.safe_load(path.read_text())["stages"]["plots"]
    deps = [d for d in stage["deps"] if d.startswith("src/")]
    assert deps[0] == "src/cae/stages/plots.py" and set(deps) == closure("cae.stages.plots")
    assert [d for d in stage["deps"] if not d.startswith("src/")] == ["models/autoencoder.keras", "data/prepared"]
    assert stage["params"] == ["seed"]
    assert stage["metrics"] == [{"metrics/x.json": {"cache": False}}] and stage["plots"] == ["plots/denoising.png"]
    text = path.read_text()
    assert "      # the model and the data\n      - models/autoencoder.keras\n      - src/cae/stages/plots.py" in text
    assert yaml.safe_load(text)["stages"]["other"] == {"cmd": "echo hello", "deps": ["src/cae/old.py"]}
    assert text.endswith("plots:\n  - plots/denoising.png\n")


# --------------------------------------------------------------------------- layering


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_no_stage_imports_another_and_the_library_imports_no_stage():
    stage_modules = {f"cae.stages.{p.stem}" for p in (SRC / "cae/stages").glob("*.py") if p.stem != "__init__"}
    for path in (SRC / "cae").rglob("*.py"):
        wrong = _imports(path) & stage_modules
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"
        if path.parent.name != "stages":
            assert not any(m.startswith("cae.stages") for m in _imports(path)), path


def test_the_library_takes_params_sections_not_the_whole_params():
    """Only the schema and the stages (and the stage runner) know the top-level Params."""
    for path in (SRC / "cae").rglob("*.py"):
        if path.name == "config.py" or path.parent.name == "stages":
            continue
        assert "cae.config.Params" not in _imports(path), f"{path.relative_to(ROOT)} takes the whole Params"
    for path in (SRC / "cae/stages").glob("*.py"):  # nor does a stage fake one with model_copy
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "model_copy":
                assert getattr(node.func.value, "id", None) != "params", f"{path.name}: {ast.unparse(node)}"


def test_the_committed_lock_records_exactly_the_pipelines_stages():
    """dvc.lock keeps the entries of stages that were renamed or removed; stale ones
    would describe outputs that no stage writes any more."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    stages = yaml.safe_load(DVC_YAML.read_text())["stages"]
    assert sorted(lock) == sorted(stages)

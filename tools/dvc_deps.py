"""Write each stage's code deps and params into dvc.yaml, from the code itself.

    python tools/dvc_deps.py           # rewrite dvc.yaml in place (`make dvc-deps`)
    python tools/dvc_deps.py --check   # exit 1, showing the difference, if dvc.yaml is out of date

For every stage whose command is ``python -m cae.stages.<name>``:

- **code deps**: the ``src/...`` entries of its ``deps:`` become the transitive closure of
  the ``cae.*`` imports of its entry module, found by reading the source (AST): imports
  inside functions count (the stages import their heavy modules late), ``from cae import
  runtime`` counts as ``cae.runtime``, and so do the packages' ``__init__.py`` files that
  an import executes (``src/cae/__init__.py``, ``src/cae/stages/__init__.py``);
- **params**: its ``params:`` list becomes the stage module's ``PARAMS`` tuple, the one
  place where a stage declares what it reads (``tests/test_dvc_graph.py`` checks, by
  reading the stage's code, that the declaration is complete).

Everything else in dvc.yaml is left as it is, byte for byte: data deps and their order,
comments, outs, metrics and plots. The rewrite is line-based, so the file stays as
readable as when written by hand.

Why the precise closure, and not ``src/cae`` (the whole package) as one dep of every
stage: DVC reruns a stage when any of its deps changes. With the whole package as a dep,
an edit to any module (the ``cae`` command's argument parsing, the folder reader, a
docstring in the baselines) would make every stage stale, and ``dvc repro`` would retrain
the denoiser, the ten one-class models and both embeddings, most of the pipeline's
compute, to reproduce byte-identical outputs. With the closure, a stage reruns exactly
when code it can execute changes, which is what DVC's cache is for. Hand-kept lists had
the opposite failure: they missed files (a stage that imports ``cae.data`` without
listing it stays "up to date" after ``cae.data`` changes), which is the one failure DVC
exists to prevent. Generating the lists from the imports, and checking in the tests that
they are current, gives the precision of the closure without its upkeep.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "cae"
ENTRY = re.compile(r"\bpython\s+-m\s+(cae\.stages\.\w+)")


# --------------------------------------------------------------------------- import closure


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of module ``name`` (``a.b`` → ``a/b.py`` or ``a/b/__init__.py``), or None."""
    base = src.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` → ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__``."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(path: Path, name: str, src: Path = SRC) -> set[str]:
    """The ``cae.*`` modules that the module ``name`` (file ``path``) imports anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from cae import runtime`: runtime may be a submodule, or a name in cae/__init__.py
            targets = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] == PACKAGE and module_file(target, src) is not None:
                found.update(m for m in _with_parents(target) if module_file(m, src) is not None)
    return found


def import_closure(entry: str, src: Path = SRC) -> set[Path]:
    """The files of ``entry`` and of every ``cae`` module it imports, transitively."""
    todo = [m for m in _with_parents(entry) if module_file(m, src) is not None]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, src)
        if path is None:
            raise SystemExit(f"{entry}: imports {name}, which has no file under {src}")
        todo.extend(imported_modules(path, name, src) - seen)
    return {module_file(name, src) for name in seen}  # type: ignore[misc]


def code_deps(entry: str, root: Path = ROOT) -> list[str]:
    """The closure as dvc.yaml paths: the entry module first, then the rest sorted."""
    files = import_closure(entry, root / "src")
    first = module_file(entry, root / "src")
    rest = sorted(p.relative_to(root).as_posix() for p in files if p != first)
    return [first.relative_to(root).as_posix(), *rest]  # type: ignore[union-attr]


# --------------------------------------------------------------------------- declared params


def declared_params(entry: str, src: Path = SRC) -> list[str]:
    """The stage module's ``PARAMS`` tuple of dotted params.yaml keys."""
    path = module_file(entry, src)
    assert path is not None
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PARAMS" for t in node.targets):
            value = ast.literal_eval(node.value)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise SystemExit(f"{path}: PARAMS must be a tuple of strings")
            return list(value)
    raise SystemExit(f"{path}: no module-level PARAMS = (...) naming the params this stage reads")


def stage_entries(text: str) -> dict[str, str]:
    """``{stage: entry module}`` for the stages of dvc.yaml run as ``python -m cae.stages.X``."""
    stages = (yaml.safe_load(text) or {}).get("stages") or {}
    found = {}
    for name, stage in stages.items():
        match = ENTRY.search(str((stage or {}).get("cmd", "")))
        if match:
            found[name] = match.group(1)
    return found


# --------------------------------------------------------------------------- the rewrite


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blocks(lines: list[str], start: int, end: int, indent: int) -> dict[str, tuple[int, int]]:
    """Keys at ``indent`` between lines ``start`` and ``end``: ``{key: (header line, end of block)}``."""
    heads = []
    for i in range(start, end):
        line = lines[i]
        if line.strip() and not line.lstrip().startswith("#") and _indent(line) == indent:
            match = re.match(r"\s*([\w@.-]+):", line)
            if match:
                heads.append((match.group(1), i))
    blocks = {}
    for k, (key, i) in enumerate(heads):
        stop = heads[k + 1][1] if k + 1 < len(heads) else end
        while stop > i + 1 and not lines[stop - 1].strip():  # trailing blank lines belong to no block
            stop -= 1
        blocks[key] = (i, stop)
    return blocks


def _item(line: str) -> str | None:
    match = re.match(r"\s*-\s+(.*?)\s*$", line)
    return match.group(1) if match else None


def _rewrite_list(lines, head, stop, keep, new_items) -> list[str]:
    """The list block ``lines[head:stop]`` with the items ``keep`` rejects replaced by
    ``new_items`` (placed where the first of them was, else first); comments and kept items stay."""
    body = lines[head + 1 : stop]
    item_indent = next((_indent(s) for s in body if _item(s) is not None), _indent(lines[head]) + 2)
    out, placed = [], False
    for line in body:
        value = _item(line)
        if value is not None and _indent(line) == item_indent and not keep(value):
            if not placed:
                out += [" " * item_indent + f"- {v}" for v in new_items]
                placed = True
            continue
        out.append(line)
    if not placed:
        out = [" " * item_indent + f"- {v}" for v in new_items] + out
    return [lines[head], *out]


def rewrite(text: str, root: Path = ROOT) -> str:
    """dvc.yaml's ``text`` with every Python stage's code deps and params brought up to date."""
    entries = stage_entries(text)
    lines = text.split("\n")
    top = _blocks(lines, 0, len(lines), 0)
    if "stages" not in top:
        return text
    start, end = top["stages"]
    stages = _blocks(lines, start + 1, end, 2)
    for name in sorted(stages, key=lambda n: stages[n][0], reverse=True):  # bottom up: line numbers hold
        if name not in entries:
            continue
        entry = entries[name]
        s_head, s_end = stages[name]
        keys = _blocks(lines, s_head + 1, s_end, 4)
        params = declared_params(entry, root / "src")
        deps = code_deps(entry, root)
        edits = []  # (first line, end line, new lines), applied bottom up so that line numbers hold
        if "params" in keys:
            p_head, p_end = keys["params"]
            for line in lines[p_head + 1 : p_end]:
                value = _item(line)
                if value is not None and value.endswith(":"):
                    raise SystemExit(f"dvc.yaml: stage {name}: params from another file ({value}) are not supported")
            block = _rewrite_list(lines, p_head, p_end, lambda v: False, params) if params else []
            edits.append((p_head, p_end, block))
        elif params:
            after = keys["deps"][1] if "deps" in keys else s_head + 1
            edits.append((after, after, [" " * 4 + "params:", *[" " * 6 + f"- {p}" for p in params]]))
        if "deps" in keys:
            d_head, d_end = keys["deps"]
            edits.append((d_head, d_end, _rewrite_list(lines, d_head, d_end, lambda v: not v.startswith("src/"), deps)))
        else:
            edits.append((s_head + 1, s_head + 1, [" " * 4 + "deps:", *[" " * 6 + f"- {d}" for d in deps]]))
        for first, stop, block in sorted(edits, key=lambda e: e[0], reverse=True):
            lines[first:stop] = block
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if dvc.yaml is out of date")
    parser.add_argument("--file", type=Path, default=ROOT / "dvc.yaml", help="the dvc.yaml (default: %(default)s)")
    args = parser.parse_args(argv)
    text = args.file.read_text()
    new = rewrite(text)
    if new == text:
        if args.check:
            print(f"{args.file.name}: code deps and params are up to date")
        return 0
    if args.check:
        diff = difflib.unified_diff(
            text.splitlines(), new.splitlines(), f"{args.file.name} (now)", f"{args.file.name} (generated)", lineterm=""
        )
        print("\n".join(diff))
        print(
            f"{args.file.name} is out of date: its code deps or params differ from the code; "
            "run `make dvc-deps` (python tools/dvc_deps.py) and commit the result",
            file=sys.stderr,
        )
        return 1
    args.file.write_text(new)
    print(f"{args.file.name}: code deps and params rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())

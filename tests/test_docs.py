"""The documentation: links that resolve, a short README whose results table matches the
committed metrics, every params key documented, and prose free of issue numbers, branch
names and commit hashes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from cae.config import ModelParams, Params

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, ROOT / "benchmarks" / "README.md", ROOT / "notebooks" / "README.md"]
README_MAX_LINES = 200

# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose(text: str) -> str:
    """``text`` without fenced code blocks."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            base = slug(m.group(1))
            name, n = base, 1
            while name in found:  # GitHub numbers repeated headings: name, name-1, …
                name, n = f"{base}-{n}", n + 1
            found.add(name)
    return found


def local_links(page: Path) -> list[str]:
    targets = LINK.findall(prose(page.read_text()))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # not http:, mailto:, …


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_and_images_resolve(page):
    targets = local_links(page)
    broken = []
    for target in targets:
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading '#{anchor}' in {rel(dest)})")
    assert not broken, f"{rel(page)}: broken links: {broken}"


def test_readme_links_every_docs_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in local_links(README)}
    missing = [rel(p) for p in DOCS if p.resolve() not in linked]
    assert not missing, f"README.md links none of {missing}"


# "issue 7", "#12", "branch", or a hexadecimal run of 7+ characters with both letters and digits
FORBIDDEN = [
    (re.compile(r"\bissues?\b", re.I), "an issue reference"),
    (re.compile(r"#\d+\b"), "an issue number"),
    (re.compile(r"\bbranch(es)?\b", re.I), "a branch"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"), "a commit hash"),
]


@pytest.mark.parametrize("page", [README, *DOCS], ids=rel)
def test_prose_names_no_issues_branches_or_commits(page):
    hits = [
        f"line {n}: {what}: {m.group(0)!r}"
        for n, line in enumerate(page.read_text().splitlines(), 1)
        for pattern, what in FORBIDDEN
        for m in pattern.finditer(line)
    ]
    assert not hits, f"{rel(page)}: {hits}"


def committed_metrics() -> dict[str, float]:
    """Every numeric key of metrics/*.json that only one file has, with its value."""
    seen: dict[str, list[float]] = {}
    for path in sorted((ROOT / "metrics").glob("*.json")):
        for key, value in json.loads(path.read_text()).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                seen.setdefault(key, []).append(float(value))
    return {key: values[0] for key, values in seen.items() if len(values) == 1}


def shown_as(value: float) -> set[str]:
    """The ways a figure may be printed: 2 or 3 decimals, or a share in per cent."""
    forms = {f"{value:.2f}", f"{value:.3f}"}
    if 0 <= value <= 1:
        forms.add(f"{100 * value:.2f}")
    return forms


def test_readme_results_table_matches_the_committed_metrics():
    """Each row of the README's results table names its metrics keys in backticks; every
    figure so named must appear in that row as the committed file has it."""
    section = README.read_text().split("\n## Results", 1)[1].split("\n## ", 1)[0]
    metrics = committed_metrics()
    checked, wrong = 0, []
    for row in (line for line in section.splitlines() if line.startswith("|")):
        for key in re.findall(r"`([a-z0-9_]+)`", row):
            if key in metrics:
                checked += 1
                if not any(form in row for form in shown_as(metrics[key])):
                    wrong.append(f"{key} = {metrics[key]} not in row {row!r}")
    assert checked >= 5, f"the results table names only {checked} metrics keys"
    assert not wrong, wrong


METRICS_MAX_SCALARS = 40  # headline figures only: `dvc exp show` stays readable; detail goes to plots/*.csv


def test_committed_metrics_hold_headline_figures_only():
    def scalars(value) -> int:
        if isinstance(value, dict):
            return sum(scalars(v) for v in value.values())
        if isinstance(value, list):
            return sum(scalars(v) for v in value)
        return 1

    counts = {p.name: scalars(json.loads(p.read_text())) for p in sorted((ROOT / "metrics").glob("*.json"))}
    assert 0 < sum(counts.values()) <= METRICS_MAX_SCALARS, counts


def params_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every params key; a nested `model` block below the top level
    (anomaly.model, latent.model) counts as one key, documented by the top-level one."""
    keys = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and not (prefix and sub is ModelParams):
            keys.extend(params_keys(sub, f"{dotted}."))
        else:
            keys.append(dotted)
    return keys


def test_params_reference_documents_every_key():
    text = (ROOT / "docs" / "params.md").read_text()
    keys = params_keys(Params)
    assert "model.filters" in keys and "latent.model" in keys and "anomaly.threshold_k" in keys
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert not missing, f"docs/params.md has no row for {missing}"

"""Property: params.yaml of any content gives valid params or one short ParamsError, never
another exception, each within a time bound (Hypothesis ``deadline``).

Three sources of content: random YAML documents (flow and block nodes of every scalar
kind, anchors and aliases, tags, deep nesting, several documents), the committed
params.yaml with one key's value replaced by random data (to reach the schema's
validators), and random bytes and text."""

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cae.config import Params, load_params
from cae.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]
COMMITTED = yaml.safe_load((REPO / "params.yaml").read_text())

# The largest file the loader accepts (128 KiB) parses in about 2 s; these examples are
# smaller and typically take milliseconds. The deadline leaves room for a machine shared
# with other work (a first example once took 8 s under load, then 60 ms on replay).
PROPERTY = settings(
    max_examples=300,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYS = sorted({*COMMITTED, *(k for v in COMMITTED.values() if isinstance(v, dict) for k in v)})
SCALARS = st.one_of(
    st.sampled_from(
        [
            "~",
            "null",
            "yes",
            "no",
            "true",
            ".inf",
            "-.inf",
            ".nan",
            "0x1F",
            "0o17",
            "1_000",
            "0b101",
            "1e999",
            "1.0e+999",
            "2001-13-45",
            "2001-12-14",
            "2001-12-14t21:59:43.10-05:00",
            "12:30:45",
            '""',
            "'quoted'",
            '"\\u0000"',
            "!!binary aGVsbG8=",
            "!!binary ###",
            "!!python/object/apply:os.system [true]",
            "!!set {a, b}",
            "!!omap [a: 1]",
            "!!omap 5",
            "!!float abc",
            "!!int 9x",
            "!!str 5",
            "!!timestamp 2001-99-99",
            "<<",
            "reference",
            "unet",
            "gaussian",
            "folder",
        ]
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),  # over Python's int-parsing limit
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20).map(
        lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'
    ),
    st.sampled_from(["*a", "*b", "*missing"]),  # aliases, defined or not
)
KEY = st.one_of(st.sampled_from(KEYS), st.text(alphabet="abc_<?:-[]{}&*!", min_size=1, max_size=6))
ANCHOR = st.sampled_from(["", "", "", "&a ", "&b "])


def _flow(children):
    return st.one_of(
        st.tuples(ANCHOR, st.lists(children, max_size=5)).map(lambda t: f"{t[0]}[{', '.join(t[1])}]"),
        st.tuples(ANCHOR, st.lists(st.tuples(KEY, children), max_size=5)).map(
            lambda t: t[0] + "{" + ", ".join(f"{k}: {v}" for k, v in t[1]) + "}"
        ),
    )


NODES = st.recursive(SCALARS, _flow, max_leaves=40)
DEEP = st.one_of(  # flow nesting up to 5,000 levels; block nesting up to 500 (the file grows as n²)
    st.integers(min_value=1, max_value=5000).flatmap(
        lambda n: st.sampled_from(["[" * n + "]" * n, "{a: " * n + "1" + "}" * n])
    ),
    st.integers(min_value=1, max_value=500).map(lambda n: "".join(f"{' ' * i}- \n" for i in range(n))),
)
BLOCK = st.lists(st.tuples(KEY, st.one_of(NODES, DEEP)), min_size=1, max_size=8).map(
    lambda items: "".join(f"{k}: {v}\n" for k, v in items)
)
DOCUMENTS = st.lists(st.one_of(BLOCK, NODES, DEEP), min_size=1, max_size=3).map("\n---\n".join)

PLAIN = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=30),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), children, max_size=4),
    ),
    max_leaves=12,
)


def _check(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        params = load_params(path)
    except ParamsError as exc:
        lines = str(exc).splitlines()
        assert 1 <= len(lines) <= 11 and all(len(line) <= 600 for line in lines), str(exc)[:2000]
        assert all(line.startswith(str(path)) for line in lines), str(exc)[:2000]
        return
    assert isinstance(params, Params)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile") / "params.yaml"


@PROPERTY
@given(text=DOCUMENTS)
def test_random_yaml_documents(target, text):
    _check(target, text.encode())


@PROPERTY
@given(data=st.data(), value=PLAIN)
def test_committed_params_with_one_value_replaced(target, data, value):
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    section = data.draw(st.sampled_from(sorted(doc)))
    if isinstance(doc[section], dict) and doc[section] and data.draw(st.booleans()):
        doc[section][data.draw(st.sampled_from(sorted(doc[section])))] = value
    else:
        doc[section] = value
    _check(target, yaml.safe_dump(doc, allow_unicode=True).encode())


@PROPERTY
@given(content=st.one_of(st.binary(max_size=4000), st.text(max_size=2000).map(lambda t: t.encode("utf-16"))))
def test_random_bytes(target, content):
    _check(target, content)

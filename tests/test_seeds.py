"""Named random streams: every use of randomness has its own, and only cae.seeds makes them."""

import ast
from pathlib import Path

import numpy as np
import pytest

from cae import seeds
from cae.prepare import eval_subset
from cae.resume import epoch_order
from cae.seeds import KEYS, Stream

SRC = Path(__file__).resolve().parents[1] / "src" / "cae"


def _every_stream(seed: int, n_keys: int = 40):
    """(stream, keys) for every stream, keyed ones with keys 0 … n_keys-1 (epochs, classes, levels)."""
    for stream in Stream:
        arity = KEYS.get(stream, 0)
        if arity == 0:
            yield stream, ()
        else:
            for k in range(n_keys):
                yield stream, (k,) * arity


@pytest.mark.parametrize("seed", [0, 1, 2**31 + 5])
def test_every_named_stream_is_distinct(seed):
    uses = list(_every_stream(seed))
    entropies = {tuple(seeds.entropy(seed, s, *k)) for s, k in uses}
    assert len(entropies) == len(uses)
    states = {tuple(np.random.SeedSequence(list(e)).generate_state(4)) for e in entropies}
    assert len(states) == len(uses)  # distinct generator states, not just distinct seed lists
    draws = {seeds.rng(seed, s, *k).integers(2**63).item() for s, k in uses}
    assert len(draws) == len(uses)
    ints = {seeds.seed_int(seed, s, *k) for s, k in uses}
    assert len(ints) == len(uses) and all(0 <= i < 2**32 for i in ints)


def test_stream_numbers_are_unique_and_keys_name_real_streams():
    assert len({int(s) for s in Stream}) == len(Stream)  # @unique also refuses an alias at import
    assert set(KEYS) <= set(Stream) and all(n > 0 for n in KEYS.values())


def test_a_stream_takes_exactly_its_keys():
    """A fixed number of keys per stream: SeedSequence pads with zeros, so [s, 8] and
    [s, 8, 0] would otherwise be the same stream."""
    assert np.array_equal(
        np.random.SeedSequence([1, 8]).generate_state(4), np.random.SeedSequence([1, 8, 0]).generate_state(4)
    )
    with pytest.raises(ValueError, match="EPOCH_SHUFFLE takes 1 key"):
        seeds.rng(0, Stream.EPOCH_SHUFFLE)
    with pytest.raises(ValueError, match="SPLIT takes 0 key"):
        seeds.rng(0, Stream.SPLIT, 1)
    with pytest.raises(ValueError, match="non-negative"):
        seeds.rng(-1, Stream.SPLIT)


def test_the_uses_that_once_collided_now_differ():
    """The noise of the training split and the shuffle of epoch 1 once shared [seed, 1];
    the embeddings' noise and the order of the GMM samples shared [seed, 500]."""
    n = 50
    split_noise = seeds.rng(0, Stream.NOISE_TRAIN).permutation(n)
    assert not np.array_equal(split_noise, epoch_order(0, 1, n))
    assert not np.array_equal(np.random.default_rng([0, 1]).permutation(n), epoch_order(0, 1, n))
    assert not np.array_equal(
        seeds.rng(0, Stream.EMBEDDING_NOISE).random(8), seeds.rng(0, Stream.DENSITY_SAMPLE, 0).random(8)
    )
    # a named use is still reproducible, and follows the seed
    np.testing.assert_array_equal(epoch_order(3, 2, n), epoch_order(3, 2, n))
    assert not np.array_equal(eval_subset(100, 10, 0), eval_subset(100, 10, 1))


_SEEDING_CALLS = {"default_rng", "SeedSequence", "RandomState", "set_random_seed", "set_seed", "seed", "Generator"}


def _seed_like(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "seed" in name.lower()


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in _SEEDING_CALLS:
                found.append(f"{where}: {ast.unparse(node)} (a generator or seed built outside cae.seeds)")
            for kw in node.keywords:
                if kw.arg == "random_state" and (isinstance(kw.value, ast.Constant) or _seed_like(kw.value)):
                    found.append(f"{where}: random_state={ast.unparse(kw.value)} (the raw seed, not a named stream)")
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts and _seed_like(node.elts[0]):
            if any(isinstance(e, (ast.Constant, ast.BinOp)) for e in node.elts[1:]):
                found.append(f"{where}: {ast.unparse(node)} (a seed list: name the stream in cae.seeds)")
        elif (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Attribute) and t.attr == "random_state" for t in node.targets)
            and (isinstance(node.value, ast.Constant) or _seed_like(node.value))
        ):
            found.append(f"{where}: {ast.unparse(node)} (the raw seed, not a named stream)")
    return found


def test_no_module_but_cae_seeds_builds_a_generator_or_a_seed_list():
    violations = [v for path in sorted(SRC.rglob("*.py")) if path.name != "seeds.py" for v in _violations(path)]
    assert not violations, "\n".join(violations)


def test_the_checker_sees_the_old_bare_streams(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import numpy as np\n"
        "a = np.random.default_rng([seed, 500])\n"
        "b = [params.seed, 200 + j]\n"
        "c = PCA(random_state=seed)\n"
        "density.random_state = seed\n"
        "keras.utils.set_random_seed(seed)\n"
    )
    lines = [v.split(":")[1] for v in _violations(bad)]
    assert sorted(set(lines)) == ["2", "3", "4", "5", "6"]

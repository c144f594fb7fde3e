"""The seed contract (``data.seeds``): no two purposes ever share bits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonarlab.data import seeds
from sonarlab.data.seeds import SEED_LIMIT, Purpose, Stream

TAGS = [*Purpose, *Stream]


def test_every_tag_is_one_purpose_with_a_fixed_number_of_path_elements():
    assert len({int(t) for t in TAGS}) == len(TAGS)  # no stream shares a purpose's tag
    assert set(seeds.ARITY) == set(TAGS)
    with pytest.raises(ValueError, match="takes 2 path elements"):
        seeds.derive_seed(7, Purpose.FOLD, 1)


def test_a_repeats_shuffle_is_not_the_final_models_seed():
    # the collision this contract was written for: [7, 2] was both
    assert seeds.split_shuffle_seed(7, 2) % SEED_LIMIT != seeds.final_seed(7)


@given(
    st.integers(0, 2**32 - 1), st.sampled_from(TAGS), st.sampled_from(TAGS),
    st.lists(st.integers(0, 2**16), min_size=3, max_size=3),
)  # fmt: skip
def test_two_tags_never_hash_the_same_input(root, a, b, path):
    """What SeedSequence hashes: different tags, or one tag with a different path,
    always give a different input (its outputs then share no bits but by chance)."""

    def entropy(tag, p):
        return [root, int(tag), *p[: seeds.ARITY[tag]]]

    if a != b:
        assert entropy(a, path) != entropy(b, path)


def seeds_of_a_study(seed: int, repeats: int, folds: int, replicates: int) -> dict[str, int]:
    """Every seed one pipeline run with ``cv.seed = seed`` draws, by what it is for: the
    shuffles, every model's seed (the pipeline's, a grid's replicates, the final model),
    every stream of every model, and predict's MC dropout generators."""
    out = {f"shuffle {r}": seeds.split_shuffle_seed(seed, r) % SEED_LIMIT for r in range(repeats)}
    models = {"final": seeds.final_seed(seed)}
    for r, f, k in itertools.product(range(repeats), range(folds), range(replicates + 1)):
        models[f"model {r}/{f}/{k}"] = seeds.fold_seed(seed, r, f, k)
    out.update(models)
    for name, model in models.items():
        out[f"{name} order"] = seeds.stream_seed(model, Stream.ORDER)
        out[f"{name} input"] = seeds.stream_seed(model, Stream.DROP_INPUT)
        for i in range(4):
            out[f"{name} hidden {i}"] = seeds.stream_seed(model, Stream.DROP_HIDDEN, i)
        for i in range(2):
            out[f"{name} lstm {i}"] = seeds.stream_seed(model, Stream.DROP_LSTM, i)
        for i in range(8):
            out[f"{name} init {i}"] = seeds.stream_seed(model, Stream.INIT, i)
    for i in range(8):
        out[f"mc {i}"] = seeds.mc_dropout_seed(seed, i)
    return out


@pytest.mark.parametrize("seed", [*range(12), 42, 1234, 2**31 - 2])
@pytest.mark.parametrize(("repeats", "folds", "replicates"), [(3, 10, 2), (10, 10, 0)])
def test_no_two_seeds_of_a_study_are_equal(seed, repeats, folds, replicates):
    """Over the seeds, repeats, folds and replicates studies use (the default's 3 x 10,
    a 10 x 10 protocol, a grid's replicate seeds): every seed a run draws is distinct."""
    drawn = seeds_of_a_study(seed, repeats, folds, replicates)
    by_value: dict[int, list[str]] = {}
    for name, value in drawn.items():
        by_value.setdefault(value, []).append(name)
    shared = {v: names for v, names in by_value.items() if len(names) > 1}
    assert not shared, f"cv.seed {seed}: {shared}"
    assert all(0 <= v < SEED_LIMIT for v in drawn.values())

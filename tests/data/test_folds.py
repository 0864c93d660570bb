"""Speaker-independent folds and manifest split names."""

import pytest

from hmaf.data.folds import manifest_split_name, manifest_splits, speaker_folds

GROUPS = [f"spk{i}" for i in range(11)]


@pytest.mark.parametrize("num_folds", [2, 5, 11])
def test_folds_are_disjoint_cover_all_and_test_each_group_once(num_folds):
    folds = speaker_folds(GROUPS, num_folds=num_folds, seed=3)
    assert len(folds) == num_folds
    tested = []
    for train, val, test in folds:
        assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
        assert sorted(train + val + test) == sorted(GROUPS)
        assert train and test
        tested += test
    assert sorted(tested) == sorted(GROUPS)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_validation_share_and_minimum():
    folds = speaker_folds(GROUPS, num_folds=5, seed=0, val_share=0.2)
    for fold in folds:
        rest = len(fold.train) + len(fold.validation)
        assert len(fold.validation) == max(1, round(0.2 * rest))
    # Five sessions, five folds (IEMOCAP): one session tests, one validates, three train.
    sessions = speaker_folds([f"Ses0{i}" for i in range(1, 6)], num_folds=5)
    assert all((len(f.train), len(f.validation), len(f.test)) == (3, 1, 1) for f in sessions)
    assert all(not f.validation for f in speaker_folds(GROUPS, num_folds=5, val_share=0.0))


def test_deterministic_and_seed_dependent_and_order_free():
    a = speaker_folds(GROUPS, seed=1)
    assert a == speaker_folds(list(reversed(GROUPS)) + GROUPS, seed=1)
    assert a != speaker_folds(GROUPS, seed=2)


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(ValueError, match="3 groups .* cannot make 5"):
        speaker_folds(["a", "b", "c"], num_folds=5)
    with pytest.raises(ValueError, match="num_folds"):
        speaker_folds(GROUPS, num_folds=1)


def test_manifest_split_names():
    assert [manifest_split_name(n) for n in ("Train", "dev", "val", "validation", "TEST")] == [
        "train", "validation", "validation", "validation", "test"]
    with pytest.raises(ValueError, match="holdout"):
        manifest_split_name("holdout")
    assert manifest_splits(["train", "dev", "test", "train"]) == {
        "train": ("train",), "validation": ("dev",), "test": ("test",)}
    with pytest.raises(ValueError, match="no split"):
        manifest_splits(["train", ""])

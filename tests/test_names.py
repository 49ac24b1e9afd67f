"""Level-1 display names (issue 10 point 6): readable at any number of brightness levels,
unique among the classes named together, and the same for the same classes."""

import re

import numpy as np
import pytest

from motifcat.ingest.model import MotifClass
from motifcat.ingest.names import (
    brightness_levels,
    display_names,
    level1_display_names,
    share_names,
)


def test_two_three_and_four_levels_take_rank_words():
    assert display_names([1.2, 0.8], [60, 40]) == ["bright 60 %", "dim 40 %"]
    assert display_names([0.6, 1.18, 0.84], [20, 300, 340]) == [
        "dim 3.0 %", "bright 45 %", "medium 52 %"]
    assert display_names([1.5, 1.1, 0.9, 0.5], [10, 20, 30, 40]) == [
        "brightest 10 %", "bright 20 %", "dim 30 %", "dimmest 40 %"]


def test_five_levels_and_more_read_as_ratio_to_the_brightest():
    # The old names read "bright 4 48 %": a rank number glued to a share.
    cs = [2.0, 1.5, 1.24, 1.0, 0.7, 0.5, 0.06]
    names = display_names(cs, [5, 10, 10, 48, 10, 12, 5])
    assert names == ["brightest 5.0 %", "0.75× 10 %", "0.62× 10 %", "0.50× 48 %",
                     "0.35× 10 %", "0.25× 12 %", "0.03× 5.0 %"]
    assert not any(re.search(r"bright \d", n) for n in names)


def test_close_ratios_get_the_digits_that_tell_them_apart():
    # Levels 0.012 apart (> the 0.01 tolerance) whose ratios round alike at 2 decimals.
    names = display_names([2.0, 1.5, 1.25, 1.238, 1.0], [20, 20, 20, 20, 20])
    ratios = [n.split()[0] for n in names[1:]]
    assert ratios == ["0.750×", "0.625×", "0.619×", "0.500×"]


def test_one_chemistry_in_two_environments_shares_the_word_and_names_stay_unique():
    # Cross-sections within 1 % of the mean are one level; equal shares get a digit, then a
    # letter.
    assert brightness_levels([1.2, 1.195, 0.8]).tolist() == [0, 0, 1]
    assert display_names([1.2, 1.195, 0.8], [401, 399, 200]) == [
        "bright 40.1 %", "bright 39.9 %", "dim 20 %"]
    names = display_names([1.2, 1.195, 0.8], [40, 40, 20])
    assert names == ["bright 40 % a", "bright 40 % b", "dim 20 %"]


def test_one_level_is_named_by_share_alone_and_unique():
    assert display_names([1.0, 1.0, 1.004], [60, 30, 10]) == ["60 %", "30 %", "10 %"]
    assert share_names([1, 1, 2]) == ["25 % a", "25 % b", "50 %"]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8, 12, 20])
def test_names_unique_and_stable_at_any_number_of_classes(k):
    rng = np.random.default_rng(k)
    cs = rng.uniform(0.3, 1.8, k)
    counts = rng.integers(1, 50, k)
    names = display_names(cs, counts)
    assert len(set(names)) == k
    assert display_names(cs, counts) == names  # stable
    # Order of the inputs does not change any class's name.
    perm = rng.permutation(k)
    assert [display_names(cs[perm], counts[perm])[list(perm).index(i)] for i in range(k)] == names


def test_level1_display_names_by_label_and_share_fallback():
    cls = [MotifClass(1, i, f"L1:{i}", n, descriptor=np.array([x, 0.0]))
           for i, (x, n) in enumerate([(1.6, 10), (1.3, 20), (1.0, 30), (0.8, 20), (0.5, 20)])]
    assert level1_display_names(cls) == {
        0: "brightest 10 %", 1: "0.81× 20 %", 2: "0.62× 30 %", 3: "0.50× 20 %", 4: "0.31× 20 %"}
    import dataclasses

    cls[2] = dataclasses.replace(cls[2], descriptor=None)
    assert level1_display_names(cls) == {0: "10 %", 1: "20 % a", 2: "30 %", 3: "20 % b",
                                         4: "20 % c"}

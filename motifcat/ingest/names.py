"""Readable names of level-1 motifs: brightness rank of the own cross-section, and share.

A level-1 class is an (environment, chemistry) pair whose descriptor starts with the mean
normalised cross-section of its columns (``MotifClass.descriptor[0]``, mean 1 over the image).
People read Z-contrast images by brightness, so the name says where the class's cross-section
ranks among the image's classes and how common it is: ``"bright 44 %"``, ``"dim 2 %"``. The
name is for display next to the id, never an identity (ids and keys are).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import MotifClass


def brightness_words(n: int) -> list[str]:
    """Words for brightness ranks 0 (brightest) .. n-1.

    Examples
    --------
    >>> brightness_words(3)
    ['bright', 'medium', 'dim']
    >>> brightness_words(5)
    ['brightest', 'bright 2', 'bright 3', 'bright 4', 'dimmest']
    """
    if n <= 0:
        return []
    if n <= 3:
        return {1: ["all"], 2: ["bright", "dim"], 3: ["bright", "medium", "dim"]}[n]
    return ["brightest"] + [f"bright {r}" for r in range(2, n)] + ["dimmest"]


def display_names(
    cross_sections: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray
) -> list[str]:
    """``"<brightness word> <share> %"`` per class (same order as the inputs).

    Classes with the same cross-section (within 1 % of the image mean: one chemistry in two
    environments, e.g. an antisite metal atom and a metal column) share the word, and the
    share tells them apart.

    Parameters
    ----------
    cross_sections : array of float
        Mean normalised cross-section of each class.
    counts : array of int
        Number of columns of each class.

    Examples
    --------
    >>> display_names([1.18, 0.84, 0.6], [300, 340, 20])
    ['bright 45 %', 'medium 52 %', 'dim 3.0 %']
    """
    cs = np.asarray(cross_sections, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if len(cs) == 0:
        return []
    # Distinct brightness levels: cross-sections within 1 % of the mean are one level.
    order = np.argsort(-cs, kind="stable")
    level = np.zeros(len(cs), dtype=np.int64)
    current = 0
    for prev, i in zip(order[:-1], order[1:], strict=True):  # k classes, a handful
        if cs[prev] - cs[i] > 0.01:
            current += 1
        level[i] = current
    words = brightness_words(current + 1)
    share = 100.0 * counts / max(counts.sum(), 1.0)
    return [
        f"{words[level[i]]} {share[i]:.0f} %" if share[i] >= 10 else
        f"{words[level[i]]} {share[i]:.1f} %"
        for i in range(len(cs))
    ]


def level1_display_names(classes: Sequence[MotifClass]) -> dict[int, str]:
    """Display name of each level-1 class, by label (classes without a cross-section: share).

    Examples
    --------
    >>> cls = [MotifClass(1, 0, "L1:0", 30, descriptor=np.array([1.2, 0.0])),
    ...        MotifClass(1, 1, "L1:1", 70, descriptor=np.array([0.9, 0.0]))]
    >>> level1_display_names(cls)
    {0: 'bright 30 %', 1: 'dim 70 %'}
    """
    cs = [float(c.descriptor[0]) if c.descriptor is not None else np.nan for c in classes]
    if not classes or np.isnan(cs).any():
        total = max(sum(c.count for c in classes), 1)
        return {c.label: f"{100 * c.count / total:.1f} %" for c in classes}
    names = display_names(cs, [c.count for c in classes])
    return {c.label: n for c, n in zip(classes, names, strict=True)}

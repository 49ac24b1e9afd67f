"""Readable names of level-1 motifs: brightness of the own cross-section, and share.

A level-1 class is an (environment, chemistry) pair whose descriptor starts with the mean
normalised cross-section of its columns (``MotifClass.descriptor[0]``, mean 1 over the image).
People read Z-contrast images by brightness, so the name says how bright the class's columns are
among the image's classes and how common the class is:

* up to four brightness levels, a rank word: ``"bright 44 %"``, ``"dim 2.0 %"`` (two levels:
  bright, dim; three: bright, medium, dim; four: brightest, bright, dim, dimmest);
* five levels or more, where rank words stop meaning anything, the cross-section relative to
  the brightest level: ``"brightest 12 %"``, ``"0.62× 31 %"`` (for HAADF, roughly
  (Z/Z_max)^1.7 for single atoms);
* one level only (one chemistry in several environments), the share alone: ``"60 %"``.

Names are unique among the classes named together (more digits in the share, then a letter,
when two would read the same) and depend only on the cross-sections and counts, so the same
classes always get the same names. The name is for display next to the id, never an identity
(ids and keys are).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import MotifClass

#: Cross-sections (normalised, mean 1 over the image) closer than this are one brightness level:
#: one chemistry seen in two environments (e.g. an antisite metal and a metal column) differs by
#: less than the ~1 % scatter of class means on the multislice sets.
LEVEL_TOLERANCE = 0.01

#: Most levels named by rank words; beyond, the ratio to the brightest is clearer.
MAX_RANK_WORDS = 4


def brightness_words(n: int) -> list[str]:
    """Rank words for brightness levels 0 (brightest) .. n-1, for ``n <= MAX_RANK_WORDS``.

    One level has no word (the share alone names the class).

    Examples
    --------
    >>> brightness_words(3)
    ['bright', 'medium', 'dim']
    >>> brightness_words(4)
    ['brightest', 'bright', 'dim', 'dimmest']
    """
    if n <= 0:
        return []
    if n > MAX_RANK_WORDS:
        raise ValueError(f"rank words go up to {MAX_RANK_WORDS} levels, not {n}")
    return {
        1: [""],
        2: ["bright", "dim"],
        3: ["bright", "medium", "dim"],
        4: ["brightest", "bright", "dim", "dimmest"],
    }[n]


def brightness_levels(cross_sections: Sequence[float] | np.ndarray) -> np.ndarray:
    """Brightness level of each class: 0 for the brightest, +1 at each gap > ``LEVEL_TOLERANCE``.

    Examples
    --------
    >>> brightness_levels([1.18, 0.84, 1.175, 0.6]).tolist()
    [0, 1, 0, 2]
    """
    cs = np.asarray(cross_sections, dtype=np.float64)
    if len(cs) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-cs, kind="stable")
    steps = np.concatenate([[0], (-np.diff(cs[order]) > LEVEL_TOLERANCE).astype(np.int64)])
    level = np.empty(len(cs), dtype=np.int64)
    level[order] = np.cumsum(steps)
    return level


def _level_words(cs: np.ndarray, level: np.ndarray) -> list[str]:
    """Word of each level: rank words, or the level's mean cross-section over the brightest's
    with as many decimals as it takes to tell the levels apart."""
    n = int(level.max()) + 1
    if n <= MAX_RANK_WORDS:
        return brightness_words(n)
    means = np.array([cs[level == k].mean() for k in range(n)])  # n levels, a handful
    ratio = means / means[0] if means[0] > 0 else means
    for digits in (2, 3, 4):
        txt = [f"{r:.{digits}f}×" for r in ratio[1:]]
        if len(set(txt)) == len(txt) and f"{1:.{digits}f}×" not in txt:
            break
    return ["brightest", *txt]


def _share_texts(share: np.ndarray, digits: int) -> list[str]:
    """Share in percent: no decimal from 10 %, one below (``digits`` more when asked)."""
    return [f"{s:.{digits + (0 if s >= 10 else 1)}f} %" for s in share]


def unique_names(prefixes: Sequence[str], share: np.ndarray) -> list[str]:
    """``"<prefix> <share> %"`` per class, unique: more share digits, then a letter, if needed.

    Examples
    --------
    >>> unique_names(["bright", "bright", "dim"], np.array([40.2, 40.4, 19.4]))
    ['bright 40.2 %', 'bright 40.4 %', 'dim 19 %']
    >>> unique_names(["", ""], np.array([50.0, 50.0]))
    ['50 % a', '50 % b']
    """
    prefixes = list(prefixes)

    def join(texts: list[str]) -> list[str]:
        return [f"{p} {t}" if p else t for p, t in zip(prefixes, texts, strict=True)]

    names = join(_share_texts(share, 0))
    # Where two names read the same, more share digits if they tell them apart (most shares
    # stay short), else a letter in input order (equal shares of one brightness level).
    for n in sorted({n for n in names if names.count(n) > 1}):
        group = [i for i, m in enumerate(names) if m == n]
        for digits in (1, 2):
            longer = [f"{prefixes[i]} {t}" if prefixes[i] else t
                      for i, t in zip(group, _share_texts(share[group], digits), strict=True)]
            if len(set(longer)) == len(group):
                break
        else:
            longer = [f"{n} {chr(ord('a') + k % 26)}{k // 26 or ''}" for k in range(len(group))]
        for i, m in zip(group, longer, strict=True):
            names[i] = m
    return names


def display_names(
    cross_sections: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray
) -> list[str]:
    """Readable name of each class (same order as the inputs), unique among them.

    Classes with the same cross-section (within ``LEVEL_TOLERANCE`` of the image mean: one
    chemistry in two environments) share the brightness word, and the share tells them apart.

    Parameters
    ----------
    cross_sections : array of float
        Mean normalised cross-section of each class (mean 1 over the image, no unit).
    counts : array of int
        Number of columns of each class.

    Returns
    -------
    list of str
        ``"<brightness> <share> %"``; see the module docstring for the brightness words.

    Examples
    --------
    >>> display_names([1.18, 0.84, 0.6], [300, 340, 20])
    ['bright 45 %', 'medium 52 %', 'dim 3.0 %']
    >>> display_names([1.6, 1.3, 1.0, 0.8, 0.5], [10, 20, 30, 20, 20])
    ['brightest 10 %', '0.81× 20 %', '0.62× 30 %', '0.50× 20 %', '0.31× 20 %']
    """
    cs = np.asarray(cross_sections, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if len(cs) == 0:
        return []
    level = brightness_levels(cs)
    words = _level_words(cs, level)
    share = 100.0 * counts / max(counts.sum(), 1.0)
    return unique_names([words[k] for k in level], share)


def share_names(counts: Sequence[int] | np.ndarray) -> list[str]:
    """Names by share alone (classes without a cross-section), unique among them.

    Examples
    --------
    >>> share_names([30, 70])
    ['30 %', '70 %']
    """
    counts = np.asarray(counts, dtype=np.float64)
    share = 100.0 * counts / max(counts.sum(), 1.0)
    return unique_names([""] * len(counts), share)


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
    counts = [c.count for c in classes]
    if not classes or np.isnan(cs).any():
        names = share_names(counts)
    else:
        names = display_names(cs, counts)
    return {c.label: n for c, n in zip(classes, names, strict=True)}

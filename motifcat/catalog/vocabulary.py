"""The shared motif vocabulary: which global ``Motif`` a level-1 class of a new image is.

Motifs are global: a catalog has one vocabulary for every sample and material. A level-1
class (an atom-column environment) found in a new image is matched to an existing level-1
``Motif`` by its descriptor; levels 2 and 3 are matched exactly by canonical key (in the
writer, after :func:`motifcat.ingest.hierarchy.relabel` has rewritten the keys with the global
level-1 ids).

The descriptor
--------------
The class descriptor is the centroid of its members' rotation-invariant Zernike magnitudes
(``MotifClass.descriptor``). Each member's moments were already made independent of dose and
brightness by :class:`motifcat.ingest.zernike.ZernikeFeatures` (disk mean removed, divided by
the moment-space norm). The centroid of unit vectors is shorter than one by an amount that
depends on the spread of the class, which grows as the dose drops; :func:`normalize_descriptor`
therefore rescales it to unit L2 norm, so that only its *direction* is compared. The Euclidean
distance between two unit descriptors is ``sqrt(2 (1 - cos θ))``, in [0, 2].

Descriptors of different spaces are never compared: the space is the feature type and the
Zernike order (``"zernike-n10"``), stored as the level-1 ``Motif.key`` (``"L1:zernike-n10"``).
PCA descriptors live in a basis fitted to each image, so they are comparable within one image
only: a PCA analysis gets the space ``"pca-<image id>"`` and all its classes become new motifs.

The match
---------
New classes are assigned to existing motifs one-to-one (Hungarian assignment on the distance
matrix, :func:`scipy.optimize.linear_sum_assignment`); a pair farther apart than ``threshold``
is not a match and the class becomes a new motif. One-to-one because the classes of one image
are distinct by construction (the clustering separated them): merging two of them into one
global motif would erase a distinction the analysis found, and would make ``CONTAINS`` counts of
that image ambiguous. The stored descriptor of a motif is the one of the class that created it;
it is not updated by later matches, so that the vocabulary cannot drift (chain) over many images.

The threshold is measured, not tuned: ``tests/test_vocabulary.py`` and ``bench/catalog.py``
compare the distance between the same class of one synthetic material at two doses and two
noise draws with the distance between different classes (see :data:`DEFAULT_THRESHOLD`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import CatalogError
from ..ingest.model import AnalysisParams, MotifClass
from .store import GraphStore

#: Largest Euclidean distance between unit-norm descriptors that counts as the same motif.
#: Measured on synthetic TMD and Cairo images, 384 px, four specimens each (``bench/catalog.py``
#: prints the table; ``tests/test_vocabulary.py`` re-checks it on one specimen of each):
#:
#: * one class seen again (the class of another analysis holding mostly the same columns,
#:   Jaccard >= 0.5): another noise draw at full dose <= 0.08; 1/2 dose <= 0.02; 1/5 dose
#:   <= 0.12; 1/10 dose <= 0.15 (median 0.04); 1/20 dose <= 0.23; 1/50 dose <= 0.19 (median 0.13);
#: * two classes of one image whose columns are of different true types (metal vs chalcogen,
#:   tiling vertex vs pentagon centre...): >= 0.25 (5th percentile 0.31).
#:
#: 0.2 lies between the two down to 1/10 of the dose. Below that the same class drifts as far as
#: distinct ones and matching is unreliable (then a class becomes a new motif rather than a
#: wrong one). Two classes that the clustering split out of *one* true type can be as close as
#: 0.04; the one-to-one assignment keeps them apart (the second becomes a new motif).
DEFAULT_THRESHOLD = 0.2

_L1_ID = re.compile(r"^L1-(\d+)$")


def descriptor_space(params: AnalysisParams, image_id: str = "") -> str:
    """The space a level-1 descriptor lives in; only descriptors of one space are compared.

    Parameters
    ----------
    params : AnalysisParams
        The analysis' settings (feature type and Zernike order).
    image_id : str
        The image's id: PCA bases are fitted per image, so its descriptors are image-specific.

    Examples
    --------
    >>> descriptor_space(AnalysisParams())
    'zernike-n10'
    >>> descriptor_space(AnalysisParams(features="pca"), "ab12")
    'pca-ab12'
    """
    if params.features == "zernike":
        return f"zernike-n{params.n_max}"
    return f"{params.features}-{image_id}"


def normalize_descriptor(descriptor: np.ndarray | Sequence[float] | None) -> np.ndarray:
    """Rescale a class descriptor to unit L2 norm (a zero or missing one stays zero).

    Examples
    --------
    >>> normalize_descriptor([3.0, 4.0])
    array([0.6, 0.8])
    """
    if descriptor is None:
        return np.zeros(0)
    d = np.asarray(descriptor, dtype=np.float64).ravel()
    if not np.all(np.isfinite(d)):
        raise CatalogError("level-1 descriptor contains NaN or Inf")
    norm = np.linalg.norm(d)
    return d / norm if norm > 0 else d


def descriptor_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) between rows of two descriptor stacks.

    Rows are normalised with :func:`normalize_descriptor` first.

    Examples
    --------
    >>> descriptor_distances(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0], [5.0, 0.0]]))
    array([[1.41421356, 0.        ]])
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def assign(new: np.ndarray, existing: np.ndarray, threshold: float) -> np.ndarray:
    """One-to-one assignment of new descriptors to existing ones within ``threshold``.

    Parameters
    ----------
    new : ndarray, shape (n, F)
    existing : ndarray, shape (m, F)
    threshold : float
        Largest accepted distance between unit-norm descriptors.

    Returns
    -------
    ndarray of int, shape (n,)
        Index into ``existing`` of each new descriptor's match, or -1 for none.

    Examples
    --------
    >>> assign(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0]]), 0.1)
    array([-1,  0])
    """
    out = np.full(len(new), -1, dtype=np.int64)
    if len(new) == 0 or len(existing) == 0:
        return out
    dist = descriptor_distances(new, existing)
    # Pairs beyond the threshold cost far more than any admissible one, so the assignment
    # first maximises the number of admissible matches, then minimises their total distance.
    cost = np.where(dist <= threshold, dist, 1e6 + dist)
    rows, cols = linear_sum_assignment(cost)
    ok = dist[rows, cols] <= threshold
    out[rows[ok]] = cols[ok]
    return out


def level1_id(number: int) -> str:
    """The id of the ``number``-th level-1 motif of a catalog (``"L1-0001"`` for 1).

    Examples
    --------
    >>> level1_id(7)
    'L1-0007'
    """
    return f"L1-{number:04d}"


def match_level1(
    store: GraphStore,
    classes: Sequence[MotifClass],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    space: str = "zernike-n10",
) -> list[str]:
    """Global motif id of each level-1 class: an existing motif of the catalog, or a new id.

    Reads the catalog only; the writer creates the new motifs in the image's transaction.

    Parameters
    ----------
    store : GraphStore
        The catalog.
    classes : sequence of MotifClass
        Level-1 classes of one analysis (with ``descriptor``).
    threshold : float, default DEFAULT_THRESHOLD
        Largest Euclidean distance between unit-norm descriptors that counts as a match.
    space : str, default "zernike-n10"
        Descriptor space (:func:`descriptor_space`); only motifs of that space are candidates.

    Returns
    -------
    list of str
        One id per class, in the order of ``classes``. New ids continue the catalog's
        ``L1-NNNN`` numbering in the order of the classes.

    Raises
    ------
    CatalogError
        Invalid threshold, a class of another level, or descriptors of different lengths.

    Examples
    --------
    >>> import os, tempfile
    >>> from motifcat.catalog.store import open_catalog
    >>> store = open_catalog(os.path.join(tempfile.mkdtemp(), "cat"))
    >>> cls = [MotifClass(1, 0, "L1:0", 5, descriptor=np.array([1.0, 0.0]))]
    >>> match_level1(store, cls)
    ['L1-0001']
    >>> store.close()
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise CatalogError(f"threshold must be a finite distance >= 0, got {threshold!r}")
    if any(c.level != 1 for c in classes):
        raise CatalogError("match_level1 takes level-1 classes only")
    if not classes:
        return []
    new = [normalize_descriptor(c.descriptor) for c in classes]
    width = {len(d) for d in new}
    if len(width) > 1:
        raise CatalogError(f"level-1 descriptors of one image differ in length: {sorted(width)}")

    rows = store.read(
        "MATCH (m:Motif) WHERE m.level = 1 RETURN m.id AS id, m.key AS key, "
        "m.descriptor AS descriptor"
    )
    numbers = [int(m.group(1)) for r in rows if (m := _L1_ID.match(r["id"] or ""))]
    next_number = max(numbers, default=0) + 1

    key = f"L1:{space}"
    n_feat = width.pop()
    cands = [r for r in rows if r["key"] == key and len(r["descriptor"] or ()) == n_feat]
    match = np.full(len(classes), -1, dtype=np.int64)
    if cands and n_feat:
        existing = np.array([r["descriptor"] for r in cands], dtype=np.float64)
        match = assign(np.vstack(new), existing, threshold)

    ids = []
    for j in match:
        if j >= 0:
            ids.append(cands[j]["id"])
        else:
            ids.append(level1_id(next_number))
            next_number += 1
    return ids

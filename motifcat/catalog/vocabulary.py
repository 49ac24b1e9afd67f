"""The shared motif vocabulary: which global ``Motif`` a level-1 class of a new image is.

Motifs are global: a catalog has one vocabulary for every sample and material. A level-1
class (an atom-column environment) found in a new image is matched to an existing level-1
``Motif`` by its descriptor; levels 2 and 3 are matched exactly by canonical key (in the
writer, after :func:`motifcat.ingest.hierarchy.relabel` has rewritten the keys with the global
level-1 ids).

The descriptor
--------------
The class descriptor is the centroid of its members' rotation-invariant Zernike magnitudes
(``MotifClass.descriptor``). How it was made independent of dose and brightness decides how two
descriptors are compared, and is part of the descriptor space:

* ``intensity_scale="image"`` (the default analysis): every patch was scaled by image-wide
  statistics that are linear in the dose (``ingest.pipeline.image_intensity_scale``), so the
  centroid is already dose- and brightness-independent *and* keeps the Z-contrast; it is compared
  as it is;
* ``intensity_scale="patch"``: each patch was reduced to unit norm, the centroid of unit vectors
  shrinks with the spread of the class, so it is rescaled to unit length and only its direction
  is compared (distance ``sqrt(2 (1 - cos θ))``, in [0, 2]).

Descriptors of different spaces are never compared: the space names the feature type, the
Zernike order, the intensity scaling and the patch window, ``"zernike-n<N>-<image|patch>"``
with an optional ``"-w<sigma>"`` (``"zernike-n10-image-w0.5"``), and is stored in the level-1
``Motif.key`` (``"L1:zernike-n10-image-w0.5"``). :func:`parse_space` reads it back. PCA
descriptors live in a basis fitted to each image, so they are comparable within one image only:
a PCA analysis gets the space ``"pca-<image id>"`` and all its classes become new motifs; they
are stored and compared as computed (like image-scaled descriptors: a PCA projection has no
meaningful unit length to normalise to).

Catalogs written before the scaling and the window were part of the space have level-1 keys
``"L1:zernike-n<N>"`` (unit-norm descriptors, read as ``"patch"`` scaling). No analysis of this
version produces that space, so those motifs stay in the catalog, with their instances and
counts, but no new class is ever matched to them: a new image of the same material creates new
level-1 motifs beside them. Re-ingest the old images into a new catalog to compare them.

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

#: Largest Euclidean distance between two descriptors that counts as the same motif, per
#: intensity scaling. Measured on synthetic TMD and Cairo images, 384 px, three specimens each
#: (``tests/test_vocabulary.py`` re-checks it on another specimen of each):
#:
#: ``"image"`` (default analysis): one class seen again (the class of another analysis holding
#: mostly the same columns, Jaccard >= 0.5) at full dose <= 0.22, at 1/10 dose <= 0.43, at 1/20
#: <= 0.57, at 1/50 <= 0.77; two classes of one image whose columns are of different true types
#: >= 0.67 (Cairo: vertex vs pentagon centre; MoSe2: metal vs chalcogen >= 3.4). 0.6 lies between
#: the two down to 1/20 of the dose; below, a class drifts as far as a distinct one and becomes a
#: new motif rather than a wrong one.
#:
#: ``"patch"`` (unit-norm descriptors): same class <= 0.15 at 1/10 dose, <= 0.23 at 1/20;
#: different types >= 0.25; 0.2 lies between them down to 1/10 of the dose.
#:
#: ``"ring"`` (the default analysis since issue 10: descriptor = [own cross-section normalised to
#: a mean of 1 and weighted by CS_WEIGHT, Zernike invariants of the environment ring], image
#: scaling; centroids of whole-patch members): measured on synthetic MoSe2 and Cairo, 384 px,
#: seed 11 (``tests/test_vocabulary.py``): one class seen again, at full dose <= 0.15 and at
#: 1/10 dose <= 2.67 (Cairo's vertex class; MoSe2 <= 1.26) for classes of >= 5 % of the
#: columns; two classes of different true types >= 6.04. 4.0 lies between. A rare class (a few
#: defect columns) re-found at 1/10 of the dose may drift further and becomes a new motif.
THRESHOLDS = {"image": 0.6, "patch": 0.2, "ring": 4.0}
#: Weight of the cross-section entry of a ring-space descriptor. Unweighted, the cross-section
#: (mean 1) counted little beside the environment invariants (norms 5-20): MoSe2's Se2 and
#: single-vacancy Se1 classes (cross-sections 1.19 and 0.59, same environment) were 0.9 apart.
#: With 10, one chemistry step of the benchmark sets (>= 0.25) weighs >= 2.5 and the drift of
#: a class's mean cross-section between doses (<= 0.03) <= 0.3.
CS_WEIGHT = 10.0
DEFAULT_THRESHOLD = THRESHOLDS["ring"]

_L1_ID = re.compile(r"^L1-(\d+)$")


def descriptor_space(params: AnalysisParams, image_id: str = "") -> str:
    """The space a level-1 descriptor lives in; only descriptors of one space are compared.

    Parameters
    ----------
    params : AnalysisParams
        The analysis' settings (feature type, Zernike order, intensity scaling, window).
    image_id : str
        The image's id: PCA bases are fitted per image, so its descriptors are image-specific.

    Examples
    --------
    >>> descriptor_space(AnalysisParams())
    'zernike-n10-image-w0.5-r1.5'
    >>> descriptor_space(AnalysisParams(env_radius=0))
    'zernike-n10-image-w0.5'
    >>> descriptor_space(AnalysisParams(intensity_scale="patch", window_sigma=None))
    'zernike-n10-patch'
    >>> descriptor_space(AnalysisParams(features="pca"), "ab12")
    'pca-ab12'
    """
    if params.features != "zernike":
        if not image_id:
            raise CatalogError("descriptor_space: a PCA space needs the image id")
        return f"{params.features}-{image_id}"
    space = f"zernike-n{params.n_max}-{params.intensity_scale}"
    if params.window_sigma:
        space += f"-w{params.window_sigma:g}"
        if params.env_radius:
            # The environment ring (issue 10): descriptors [own cross-section, invariants].
            space += f"-r{params.env_radius:g}"
    return space


_ZERNIKE_SPACE = re.compile(
    r"^zernike-n(\d+)(?:-(image|patch))?(?:-w([0-9.eE+-]+?))?(?:-r([0-9.eE+]+))?$"
)
_PCA_SPACE = re.compile(r"^pca-(\S+)$")


def parse_space(space: str) -> dict[str, object]:
    """The parts of a descriptor space name (see :func:`descriptor_space`).

    Parameters
    ----------
    space : str
        ``"zernike-n<N>-<image|patch>[-w<sigma>]"``, ``"pca-<image id>"``, or the older
        ``"zernike-n<N>"`` (unit-norm descriptors: read as ``"patch"`` scaling).

    Returns
    -------
    dict
        ``features`` ("zernike" or "pca"), ``n_max`` (int or None), ``scaling`` ("image" or
        "patch": how the descriptors are stored and compared), ``window_sigma`` (float or
        None) and ``image_id`` (PCA: the image whose basis it is; else None).

    Raises
    ------
    CatalogError
        ``space`` is not a descriptor space name.

    Examples
    --------
    >>> parse_space("zernike-n10-image-w0.5")["scaling"], parse_space("pca-ab12")["image_id"]
    ('image', 'ab12')
    """
    text = str(space)
    if m := _ZERNIKE_SPACE.match(text):
        try:
            window = float(m.group(3)) if m.group(3) is not None else None
        except ValueError:
            window = -1.0
        radius = float(m.group(4)) if m.group(4) is not None else 0.0
        if (window is None or window > 0) and np.isfinite(radius):
            return {
                "features": "zernike",
                "n_max": int(m.group(1)),
                "scaling": m.group(2) or "patch",
                "window_sigma": window,
                "env_radius": radius,
                "image_id": None,
            }
    elif m := _PCA_SPACE.match(text):
        return {
            "features": "pca",
            "n_max": None,
            "scaling": "image",
            "window_sigma": None,
            "env_radius": None,
            "image_id": m.group(1),
        }
    raise CatalogError(
        f"{text!r} is not a descriptor space: expected 'zernike-n<N>-<image|patch>[-w<sigma>]' "
        "or 'pca-<image id>'"
    )


def scaling_of(space: str) -> str:
    """How descriptors of ``space`` are stored and compared: ``"image"`` (as computed) or
    ``"patch"`` (rescaled to unit norm). PCA spaces are compared as computed.

    Raises
    ------
    CatalogError
        ``space`` is not a descriptor space name (:func:`parse_space`).

    Examples
    --------
    >>> scaling_of("zernike-n10-image-w0.5"), scaling_of("zernike-n10-patch")
    ('image', 'patch')
    >>> scaling_of("pca-ab12")
    'image'
    """
    return str(parse_space(space)["scaling"])


def default_threshold(space: str) -> float:
    """The measured match threshold for descriptors of ``space`` (see :data:`THRESHOLDS`).

    Examples
    --------
    >>> default_threshold("zernike-n10-image-w0.5-r1.5")
    4.0
    >>> default_threshold("zernike-n10-image-w0.5")
    0.6
    """
    parts = parse_space(space)
    if parts.get("env_radius"):
        return THRESHOLDS["ring"]
    return THRESHOLDS[str(parts["scaling"])]


def normalize_descriptor(
    descriptor: np.ndarray | Sequence[float] | None, space: str = "zernike-n10-image"
) -> np.ndarray:
    """The form in which a class descriptor of ``space`` is stored and compared.

    Image-scaled descriptors are compared as they are; patch-scaled ones are rescaled to unit
    L2 norm (a zero or missing one stays zero). In a ring space (``-r<radius>``) the first
    entry, the class's mean normalised cross-section, is weighted by :data:`CS_WEIGHT`.

    Examples
    --------
    >>> normalize_descriptor([3.0, 4.0], "zernike-n10-patch")
    array([0.6, 0.8])
    >>> normalize_descriptor([3.0, 4.0], "zernike-n10-image-w0.5")
    array([3., 4.])
    >>> normalize_descriptor([0.5, 4.0], "zernike-n10-image-w0.5-r1.5")
    array([5., 4.])
    """
    if descriptor is None:
        return np.zeros(0)
    d = np.asarray(descriptor, dtype=np.float64).ravel()
    if not np.all(np.isfinite(d)):
        raise CatalogError("level-1 descriptor contains NaN or Inf")
    parts = parse_space(space)
    if parts.get("env_radius") and len(d):
        d = d.copy()
        d[0] *= CS_WEIGHT
    if parts["scaling"] == "image":
        return d
    norm = np.linalg.norm(d)
    return d / norm if norm > 0 else d


def raw_descriptor(stored: np.ndarray | Sequence[float], space: str) -> np.ndarray:
    """Undo :func:`normalize_descriptor`'s weighting: a stored image-scaled descriptor back in
    the raw form of a class descriptor (patch-scaled ones stay unit vectors, which is their raw
    form up to scale).

    Examples
    --------
    >>> raw_descriptor(normalize_descriptor([0.5, 4.0], "zernike-n10-image-w0.5-r1.5"),
    ...                "zernike-n10-image-w0.5-r1.5")
    array([0.5, 4. ])
    """
    d = np.asarray(stored, dtype=np.float64).ravel().copy()
    if parse_space(space).get("env_radius") and len(d):
        d[0] /= CS_WEIGHT
    return d


def descriptor_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) between rows of two descriptor stacks.

    The rows must already be in stored form (:func:`normalize_descriptor`).

    Examples
    --------
    >>> descriptor_distances(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0], [5.0, 0.0]]))
    array([[2.23606798, 4.        ]])
    """
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def assign(new: np.ndarray, existing: np.ndarray, threshold: float) -> np.ndarray:
    """One-to-one assignment of new descriptors to existing ones within ``threshold``.

    Parameters
    ----------
    new : ndarray, shape (n, F)
    existing : ndarray, shape (m, F)
    threshold : float
        Largest accepted distance between descriptors (in stored form).

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
    threshold: float | None = None,
    *,
    space: str = "zernike-n10-image-w0.5",
) -> list[str]:
    """Global motif id of each level-1 class: an existing motif of the catalog, or a new id.

    Reads the catalog only; the writer creates the new motifs in the image's transaction.

    Parameters
    ----------
    store : GraphStore
        The catalog.
    classes : sequence of MotifClass
        Level-1 classes of one analysis (with ``descriptor``).
    threshold : float, optional
        Largest Euclidean distance between descriptors that counts as a match; default
        :func:`default_threshold` of ``space``.
    space : str, default "zernike-n10-image-w0.5"
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
    >>> from motifcat.catalog import open_catalog
    >>> store = open_catalog(os.path.join(tempfile.mkdtemp(), "cat"))
    >>> cls = [MotifClass(1, 0, "L1:0", 5, descriptor=np.array([1.0, 0.0]))]
    >>> match_level1(store, cls)
    ['L1-0001']
    >>> store.close()
    """
    if threshold is None:
        threshold = default_threshold(space)
    if not np.isfinite(threshold) or threshold < 0:
        raise CatalogError(f"threshold must be a finite distance >= 0, got {threshold!r}")
    if any(c.level != 1 for c in classes):
        raise CatalogError("match_level1 takes level-1 classes only")
    if not classes:
        return []
    new = [normalize_descriptor(c.descriptor, space) for c in classes]
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

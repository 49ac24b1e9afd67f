"""The central data model of motifcat: what flows between the pipeline stages.

Like ``ase.Atoms`` for ASE, these dataclasses are the one vocabulary every stage, the catalog
writer, the exporter and the app agree on. Coordinates inside ``ingest`` are (x, y) in pixels,
x along columns (axis 1) and y along rows (axis 0); a pixel size turns them into Å.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import AnalysisError


@dataclass(frozen=True, eq=False)
class Micrograph:
    """A 2-D atomic-resolution image with its calibration.

    Attributes
    ----------
    data : ndarray of float32, shape (H, W)
        Pixel intensities (detector counts or arbitrary units).
    pixel_size_A : float or None
        Size of one pixel in Å; None when the file carries no calibration.
    path : str or None
        Source file, for provenance and error messages.
    sha256 : str
        Hex digest of the pixel data (C-order float32 bytes plus shape); the image's identity.
    metadata : dict
        What matters of the original metadata: ``voltage_kV``, ``detector``, ``dwell_time_s``,
        ``signal_type``, ``original_format`` ... (JSON-serialisable values only).
    """

    data: np.ndarray
    pixel_size_A: float | None
    path: str | None = None
    sha256: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]


@dataclass(frozen=True)
class AnalysisParams:
    """Every setting of one analysis; stored with the image for provenance.

    Lengths are in pixels unless the name ends in ``_A``. ``None`` means "derive from the image".

    Attributes
    ----------
    pixel_size_A : float or None
        Overrides the micrograph's calibration (Å/pixel).
    period_px : float or None
        Dominant lattice period; default from the radially averaged FFT.
    spacing_px : float or None
        Nearest-neighbour column spacing; default from the detected lattice.
    smoothing : float
        Gaussian smoothing before peak finding, as a fraction of the lattice period.
    threshold_sigma : float
        A column must rise above the lowest smoothed value within one period by this many
        standard deviations of the smoothed pixel noise (estimated from the image itself).
    refine : {"model", "com", "gaussian", "none"}
        Sub-pixel refinement of column positions. ``"model"`` (default) fits the image as a
        sum of 2-D Gaussians on a smooth background, neighbours together
        (``ingest.columns.fit``): it is the only choice that accounts for the overlapping
        tails of close neighbours (which pull a centre of mass towards the brighter one) and
        the only one that measures each column's cross-section, which the level-1 classes
        need; at > 10k columns/s it costs less than the descriptors. ``"com"`` (centre of
        mass of the smoothed image) is the fast option.
    min_distance_factor : float
        Two columns are at least this fraction of the period apart (non-maximum suppression
        of the peak test; 0.3 keeps both sublattices of a TMD, 2/3 period apart).
    min_relative_prominence : float
        A peak must also rise by this fraction of the median column prominence (a guard for
        nearly noise-free images; see ``ingest.columns.detect_columns``).
    residual_search : bool
        With ``refine="model"``: add columns found in the residual of the fit, each kept
        only if the model-selection criterion (BIC) says so.
    patch_size : int or None
        Side of the square patch (odd); default ``2 * period + 1``. When that is too few
        pixels to resolve the Zernike order ``n_max`` (coarse sampling, a few px per period),
        the default patch keeps its extent and is resampled (bilinear) to the smallest size
        that resolves it, so a valid image never fails for lack of pixels.
    n_max : int
        Highest Zernike order (66 moments and 36 invariants for n_max = 10).
    features : {"zernike", "pca"}
        Descriptor of each patch: rotation-invariant Zernike magnitudes, or PCA of raw patches.
    n_components : int or None
        PCA components (default: the number of Zernike invariants for ``n_max``).
    clusterer : {"gmm"}
        Unsupervised clustering with an automatically chosen number of classes: sites from a
        Gaussian mixture of the environment descriptors, then per site chemistries from a
        mixture of the own cross-sections, both ordered by ICL (see ``ingest.cluster``).
    intensity_scale : {"image", "patch"}
        How descriptors are made independent of dose and brightness. ``"image"``: every patch
        is ``(patch - offset) / column_scale`` with ONE offset (image mean) and ONE column
        intensity scale (mean column peak above it) per image, so Z-contrast between columns
        is kept (``ingest.pipeline.image_intensity_scale``).
        ``"patch"``: each patch's own mean and norm are removed (affine invariant per patch;
        loses absolute Z-contrast).
    window_sigma : float or None
        Width (sigma) of the Gaussian window applied to every patch before the environment
        descriptor, in units of the nearest-neighbour spacing. None: no window.
    env_radius : float
        Radius of that window's ring, in nearest-neighbour spacings. The environment
        descriptor should tell the column's *site* (sublattice), while the column itself is
        described by its own cross-section: a ring at 1.5 spacings with sigma 0.5 weighs the
        first three neighbour shells (a honeycomb's 3 + 6 + 3 columns) and gives the column
        itself 1 % of the weight, so that a single changed neighbour (a vacancy next door)
        moves the descriptor by a fraction of the distance between sites. Chosen on
        ``bench/classes.py`` (synthetic MoSe2, doses 1 ... 1/50) against a ring on the first
        shell (1.0, sigma 0.35), which split the columns next to defects into environment
        classes of their own, and on the second shell (1.73, sigma 0.3). 0 gives the
        centred taper of earlier versions.
    max_classes : int
        Upper bound of the number of chemistry classes tried per site.
    random_state : int
        Seed of every random choice, so that an analysis is reproducible.
    hierarchy : bool
        Build level-2/3 motifs.
    max_edge_factor : float
        Neighbour-graph edges longer than this × local spacing are pruned.
    majority_filter : bool
        Set the dominant (perfect-lattice) level-2 unit aside when forming level-3 composites.
    min_support : int
        Support threshold of the hierarchy: a level-2/3 class seen fewer times in the image is
        *rare*. It keeps its exact key but is grouped into a family (``MotifClass.family``,
        e.g. "defect neighbourhood of <unit key>"); classes at or above it are families of
        their own. Reported in ``Hierarchy.support``.
    defect_majority : float
        Second support threshold: the fraction of all level-2 units the most frequent unit
        class needs for the image to count as a lattice with defects, whose non-dominant units
        then get defect neighbourhoods at level 3 (see ``hierarchy.build_hierarchy``).
    """

    pixel_size_A: float | None = None
    period_px: float | None = None
    spacing_px: float | None = None
    smoothing: float = 0.15
    threshold_sigma: float = 8.0
    refine: str = "model"
    min_distance_factor: float = 0.3
    min_relative_prominence: float = 0.1
    residual_search: bool = True
    patch_size: int | None = None
    n_max: int = 10
    features: str = "zernike"
    n_components: int | None = None
    clusterer: str = "gmm"
    max_classes: int = 12
    intensity_scale: str = "image"
    window_sigma: float | None = 0.5
    env_radius: float = 1.5
    random_state: int = 0
    hierarchy: bool = True
    max_edge_factor: float = 1.45
    majority_filter: bool = False
    min_support: int = 3
    defect_majority: float = 0.75

    def __post_init__(self) -> None:
        # Validate at the boundary: a bad setting is named before any work is done.
        choices = {
            "refine": ("model", "com", "gaussian", "none"),
            "features": ("zernike", "pca"),
            "clusterer": ("gmm",),
            "intensity_scale": ("image", "patch"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise AnalysisError(
                    f"AnalysisParams.{name} must be one of {', '.join(allowed)}; "
                    f"got {getattr(self, name)!r}"
                )
        positive = ("pixel_size_A", "spacing_px", "smoothing", "window_sigma")
        for name in positive:
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise AnalysisError(f"AnalysisParams.{name} must be > 0, got {value!r}")
        if self.period_px is not None and not self.period_px > 1:
            raise AnalysisError(f"AnalysisParams.period_px must be > 1 pixel, got {self.period_px}")
        if self.patch_size is not None and (self.patch_size < 5 or self.patch_size % 2 == 0):
            raise AnalysisError(
                f"AnalysisParams.patch_size must be odd and >= 5, got {self.patch_size}"
            )
        if not 1 <= self.n_max <= 30:
            raise AnalysisError(f"AnalysisParams.n_max must be in 1..30, got {self.n_max}")
        if self.max_classes < 1:
            raise AnalysisError(f"AnalysisParams.max_classes must be >= 1, got {self.max_classes}")
        if self.threshold_sigma < 0:
            raise AnalysisError(
                f"AnalysisParams.threshold_sigma must be >= 0, got {self.threshold_sigma}"
            )
        if not 0 < self.min_distance_factor < 1:
            raise AnalysisError(
                f"AnalysisParams.min_distance_factor must be in (0, 1), got "
                f"{self.min_distance_factor}"
            )
        if not 0 <= self.min_relative_prominence < 1:
            raise AnalysisError(
                f"AnalysisParams.min_relative_prominence must be in [0, 1), got "
                f"{self.min_relative_prominence}"
            )
        if not (np.isfinite(self.env_radius) and self.env_radius >= 0):
            raise AnalysisError(f"AnalysisParams.env_radius must be >= 0, got {self.env_radius!r}")
        if not (isinstance(self.min_support, (int, np.integer)) and self.min_support >= 1):
            raise AnalysisError(
                f"AnalysisParams.min_support must be an integer >= 1, got {self.min_support!r}"
            )
        if not (np.isfinite(self.defect_majority) and 0 < self.defect_majority <= 1):
            raise AnalysisError(
                f"AnalysisParams.defect_majority must be in (0, 1], got {self.defect_majority!r}"
            )
        if not self.max_edge_factor > 1:
            raise AnalysisError(
                f"AnalysisParams.max_edge_factor must be > 1, got {self.max_edge_factor}"
            )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AnalysisParams:
        """Parameters stored by :meth:`to_json`; settings unknown to this version are dropped
        (a newer motifcat may have added some), missing ones take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


@dataclass(frozen=True, eq=False)
class Lattice:
    """Lattice scales measured on an image (pixels)."""

    period_px: float
    spacing_px: float


@dataclass(frozen=True, eq=False)
class Columns:
    """Detected atom columns.

    Attributes
    ----------
    xy : ndarray of float64, shape (N, 2)
        Sub-pixel positions (x, y) in pixels.
    intensity : ndarray of float64, shape (N,)
        Smoothed image value at the peak (a proxy for Z^1.7 contrast).

    The Gaussian image model (``refine="model"``, see ``ingest.columns.fit``) adds, per
    column (None when the columns were not model-fitted):

    sigma : ndarray, shape (N,)
        Width (standard deviation) of the column's 2-D Gaussian (px).
    height : ndarray, shape (N,)
        Peak height above the local background (image units).
    background : ndarray, shape (N,)
        Local background level under the column (image units).
    cross_section : ndarray, shape (N,)
        Scattering cross-section: integrated intensity above the background,
        ``2 pi height sigma^2`` (image units x px^2).
    cross_section_err : ndarray, shape (N,)
        Its one-standard-deviation uncertainty (same units).
    xy_err : ndarray, shape (N, 2)
        One-standard-deviation uncertainty of x and y (px).
    """

    xy: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray | None = None
    height: np.ndarray | None = None
    background: np.ndarray | None = None
    cross_section: np.ndarray | None = None
    cross_section_err: np.ndarray | None = None
    xy_err: np.ndarray | None = None

    #: Optional per-column arrays, in the order they are stored.
    OPTIONAL = ("sigma", "height", "background", "cross_section", "cross_section_err", "xy_err")

    def __len__(self) -> int:
        return len(self.xy)

    def subset(self, index: np.ndarray) -> Columns:
        """The columns selected by ``index`` (integer or boolean), every array alike."""
        extra = {
            k: None if getattr(self, k) is None else np.asarray(getattr(self, k))[index]
            for k in self.OPTIONAL
        }
        return Columns(xy=self.xy[index], intensity=self.intensity[index], **extra)


@dataclass(frozen=True, eq=False)
class MotifClass:
    """One motif class of one level found in one image.

    Attributes
    ----------
    level : int
        1 = atom-column environment, 2 = unit (polygon), 3 = composite of units.
    label : int
        Index of the class within its level of this analysis.
    key : str
        Canonical key. Level 1: ``"L1:<label>"`` (matched across images by descriptor, not key);
        levels 2 and 3: a canonical form invariant to rotations and reflections, written in terms
        of the level-1 names it was computed with (see ``hierarchy.relabel``).
    count : int
        Number of instances in this image.
    descriptor : ndarray or None
        Level 1: centroid of the (normalised) rotation-invariant descriptors of the members.
    mean_image : ndarray or None
        Average reconstructed (level 1) or aligned average (levels 2/3) image of the class.
    prototype_xy : ndarray or None, shape (K, 2)
        Mean aligned positions of the class's columns relative to its centre, in pixels.
    prototype_labels : ndarray or None, shape (K,)
        Level-1 class label of each prototype column.
    composed_of : dict
        Lower-level class label -> multiplicity (how many of them one instance contains).
    periodic : bool
        True when the class is a lattice cell (the exporter then sets ``pbc``).
    cell_px : ndarray or None, shape (2, 2)
        Cell vectors in pixels when ``periodic``.
    family : str or None
        Levels 2/3: the family the class belongs to, a layer above the exact key. A class
        with at least ``min_support`` instances is a family of its own (family = key); a rare
        level-3 class belongs to "defect neighbourhood of <key of its rarest unit>", a rare
        level-2 class to "variant of <closest frequent unit key>" (see
        ``hierarchy.assign_families``). None on level 1.
    """

    level: int
    label: int
    key: str
    count: int
    descriptor: np.ndarray | None = None
    mean_image: np.ndarray | None = None
    prototype_xy: np.ndarray | None = None
    prototype_labels: np.ndarray | None = None
    composed_of: dict[int, int] = field(default_factory=dict)
    periodic: bool = False
    cell_px: np.ndarray | None = None
    family: str | None = None


@dataclass(frozen=True, eq=False)
class Level:
    """All instances and classes of one level of the hierarchy.

    Attributes
    ----------
    level : int
    classes : list of MotifClass
    instance_class : ndarray of int, shape (n,)
        Class label of each instance (index into ``classes`` by label).
    instance_xy : ndarray of float, shape (n, 2)
        Centre of each instance in pixels.
    members_indptr, members_indices : ndarray of int
        CSR lists: the lower-level instances (indices into the previous level's instances; for
        level 2, into the columns) that instance i contains are
        ``members_indices[members_indptr[i]:members_indptr[i + 1]]``. Empty for level 1.
    """

    level: int
    classes: list[MotifClass]
    instance_class: np.ndarray
    instance_xy: np.ndarray
    members_indptr: np.ndarray
    members_indices: np.ndarray

    def members(self, i: int) -> np.ndarray:
        return self.members_indices[self.members_indptr[i] : self.members_indptr[i + 1]]

    def __len__(self) -> int:
        return len(self.instance_class)


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """Levels 2 and 3 built over the level-1 columns, and the column neighbour graph.

    Attributes
    ----------
    levels : list of Level
        ``levels[0]`` is level 2, ``levels[1]`` level 3 (level 1 lives in ``Analysis``).
    neighbour_pairs : ndarray of int, shape (E, 2)
        Column index pairs (i < j) of the pruned neighbour graph (stored as ``NEAR``).
    neighbour_dist_px : ndarray of float, shape (E,)
    structure : object or None
        The geometric structure the levels were classified from (faces, interior columns,
        unit adjacency, vertex stars; see ``hierarchy.HierarchyStructure``), kept so that
        ``hierarchy.relabel`` can recompute every key after level-1 classes are renamed.
    support : dict
        The support thresholds used and what they did (``hierarchy.support_report``):
        ``min_support``, ``defect_majority``, the dominant unit's fraction, whether defect
        neighbourhoods were formed and, per level, the numbers of classes, frequent classes,
        rare classes and their instances, and families.
    """

    levels: list[Level]
    neighbour_pairs: np.ndarray
    neighbour_dist_px: np.ndarray
    structure: Any = None
    support: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything ``analyze`` learns from one micrograph (no database involved).

    Attributes
    ----------
    micrograph : Micrograph
    params : AnalysisParams
    lattice : Lattice
    columns : Columns
        Every detected column.
    has_patch : ndarray of bool, shape (N,)
        True for columns whose whole patch lies inside the image: the classes are learned on
        them. The others (at the border) are described with the part of their patch outside
        the image masked, and labelled by the fitted classes.
    features : ndarray of float, shape (N, 1 + F)
        Level-1 descriptor of every column: ``[:, 0]`` its own normalised cross-section
        (mean 1 over the image), ``[:, 1:]`` the environment descriptor (Zernike invariants
        or PCA scores).
    moments : ndarray of float or None, shape (N, n_moments)
        Zernike moments of the environment patches (None for the PCA baseline).
    labels : ndarray of int, shape (N,)
        Level-1 class of each column.
    classes : list of MotifClass
        Level-1 classes.
    hierarchy : Hierarchy or None
    software : str
        ``motifcat <version>`` that produced it.
    """

    micrograph: Micrograph
    params: AnalysisParams
    lattice: Lattice
    columns: Columns
    has_patch: np.ndarray
    features: np.ndarray
    moments: np.ndarray | None
    labels: np.ndarray
    classes: list[MotifClass]
    hierarchy: Hierarchy | None = None
    software: str = ""

    @property
    def pixel_size_A(self) -> float | None:
        return self.params.pixel_size_A or self.micrograph.pixel_size_A

    @property
    def n_dropped_at_border(self) -> int:
        """Columns whose patch crosses the border (labelled from a masked patch)."""
        return int((~self.has_patch).sum())

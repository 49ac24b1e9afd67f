"""Remove images (or whole samples) from a catalog, keeping the vocabulary's counts right.

An image owns its instances (``IN_IMAGE``) and its ``CONTAINS`` counts; the motifs are shared.
Deleting an image subtracts its ``CONTAINS`` counts from every motif's ``n_instances``, deletes
its instances (with their ``NEAR``/``PART_OF``/``INSTANCE_OF`` relationships) and the image,
then the motifs no remaining image contains, and samples and materials left without images
(a material with a reference crystal is kept).
All of it in one transaction: a failure leaves the catalog as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CatalogError
from .store import GraphStore, Statement

__all__ = ["DeleteReport", "delete_images", "resolve_images"]


@dataclass(frozen=True)
class DeleteReport:
    """What :func:`delete_images` removed."""

    image_ids: tuple[str, ...]
    n_instances: int
    deleted_motifs: tuple[str, ...]
    deleted_samples: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"deleted {len(self.image_ids)} image(s), {self.n_instances} instances, "
            f"{len(self.deleted_motifs)} motif(s) no other image contains"
            + (f", sample(s) {', '.join(self.deleted_samples)}" if self.deleted_samples else "")
        )


def resolve_images(store: GraphStore, ref: str) -> list[str]:
    """Image ids named by ``ref``: a sample name, a full image id or a unique prefix of one
    (>= 6 hex digits), or the stored path or file name of an image.

    Raises
    ------
    CatalogError
        When nothing matches, or an id prefix or file name matches several images.
    """
    by_sample = store.read(
        "MATCH (i:Image)-[:OF_SAMPLE]->(s:Sample {name: $ref}) RETURN i.id AS id ORDER BY id",
        {"ref": ref},
    )
    if by_sample:
        return [r["id"] for r in by_sample]
    rows = store.read("MATCH (i:Image) RETURN i.id AS id, i.path AS path ORDER BY id")
    hits = [r["id"] for r in rows if r["id"] == ref]
    if not hits and len(ref) >= 6:
        hits = [r["id"] for r in rows if r["id"].startswith(ref.lower())]
    if not hits:
        name = ref.replace("\\", "/").rsplit("/", 1)[-1]
        hits = [
            r["id"]
            for r in rows
            if r["path"]
            and (
                r["path"] == ref
                or r["path"].replace("\\", "/").endswith("/" + name)
                or r["path"] == name
            )
        ]
    if not hits:
        raise CatalogError(f"{ref}: no sample, image id or image path of that name in the catalog")
    if len(hits) > 1 and not any(r["id"] == ref for r in rows):
        shown = ", ".join(h[:12] for h in hits[:5])
        raise CatalogError(f"{ref}: names {len(hits)} images ({shown}); give the image id")
    return hits


def delete_images(store: GraphStore, image_ids: list[str]) -> DeleteReport:
    """Delete images and what only they hold, in one transaction.

    Parameters
    ----------
    store : GraphStore
        Opened for writing.
    image_ids : list of str
        Ids (sha256 of the pixels) of stored images.

    Returns
    -------
    DeleteReport

    Examples
    --------
    >>> import os, tempfile
    >>> from motifcat.catalog import open_catalog, write_analysis
    >>> from motifcat.datasets import make_tmd
    >>> from motifcat.ingest import analyze, AnalysisParams
    >>> a = analyze(make_tmd((192, 192), seed=3).micrograph(), AnalysisParams(hierarchy=False))
    >>> with open_catalog(os.path.join(tempfile.mkdtemp(), "cat")) as store:
    ...     rep = write_analysis(store, a, sample="s1", material="MoSe2")
    ...     out = delete_images(store, [rep.image_id])
    ...     left = store.read("MATCH (n) RETURN count(n) AS n")[0]["n"]
    >>> len(out.image_ids), left
    (1, 0)
    """
    ids = sorted(set(image_ids))
    if not ids:
        return DeleteReport((), 0, (), ())
    found = store.read("MATCH (i:Image) WHERE i.id IN $ids RETURN i.id AS id", {"ids": ids})
    missing = sorted(set(ids) - {r["id"] for r in found})
    if missing:
        raise CatalogError(f"image {missing[0][:12]} is not in the catalog; nothing deleted")
    contained = store.read(
        "MATCH (i:Image)-[c:CONTAINS]->(m:Motif) WHERE i.id IN $ids "
        "RETURN m.id AS motif, sum(c.count) AS n",
        {"ids": ids},
    )
    motif_list = [r["motif"] for r in contained]
    still = store.read(
        "MATCH (i:Image)-[:CONTAINS]->(m:Motif) WHERE m.id IN $motifs AND NOT i.id IN $ids "
        "RETURN DISTINCT m.id AS motif",
        {"motifs": motif_list, "ids": ids},
    )
    orphans = sorted(set(motif_list) - {r["motif"] for r in still})
    n_instances = store.read(
        "MATCH (x:Instance)-[:IN_IMAGE]->(i:Image) WHERE i.id IN $ids RETURN count(x) AS n",
        {"ids": ids},
    )[0]["n"]
    samples = store.read(
        "MATCH (i:Image)-[:OF_SAMPLE]->(s:Sample) WHERE i.id IN $ids "
        "RETURN DISTINCT s.name AS name",
        {"ids": ids},
    )
    sample_names = [r["name"] for r in samples]
    keep = store.read(
        "MATCH (i:Image)-[:OF_SAMPLE]->(s:Sample) WHERE s.name IN $names AND NOT i.id IN $ids "
        "RETURN DISTINCT s.name AS name",
        {"names": sample_names, "ids": ids},
    )
    empty_samples = sorted(set(sample_names) - {r["name"] for r in keep})
    ops = [
        Statement(
            "UNWIND $rows AS r MATCH (m:Motif {id: r.motif}) "
            "SET m.n_instances = m.n_instances - r.n",
            {"rows": [{"motif": r["motif"], "n": int(r["n"])} for r in contained]},
        ),
        Statement(
            "MATCH (x:Instance)-[:IN_IMAGE]->(i:Image) WHERE i.id IN $ids DETACH DELETE x",
            {"ids": ids},
        ),
        Statement("MATCH (i:Image) WHERE i.id IN $ids DETACH DELETE i", {"ids": ids}),
        Statement("MATCH (m:Motif) WHERE m.id IN $ids DETACH DELETE m", {"ids": orphans}),
        Statement(
            "MATCH (s:Sample) WHERE s.name IN $names DETACH DELETE s", {"names": empty_samples}
        ),
    ]
    materials = store.read(
        "MATCH (s:Sample)-[:OF_MATERIAL]->(m:Material) WHERE s.name IN $names "
        "RETURN DISTINCT m.name AS name",
        {"names": empty_samples},
    )
    used = store.read(
        "MATCH (s:Sample)-[:OF_MATERIAL]->(m:Material) WHERE NOT s.name IN $names "
        "RETURN DISTINCT m.name AS name",
        {"names": empty_samples},
    )
    # A material with a stored reference crystal keeps it (and so itself) for later ingests.
    with_reference = store.read(
        "MATCH (m:Material)-[:HAS_REFERENCE]->(:Reference) WHERE m.name IN $names "
        "RETURN m.name AS name",
        {"names": sorted({r["name"] for r in materials})},
    )
    empty_materials = sorted(
        {r["name"] for r in materials} - {r["name"] for r in used + with_reference}
    )
    ops.append(
        Statement(
            "MATCH (m:Material) WHERE m.name IN $names DETACH DELETE m", {"names": empty_materials}
        )
    )
    store.write(ops)
    return DeleteReport(tuple(ids), int(n_instances), tuple(orphans), tuple(empty_samples))

"""Reference crystals: from a file ASE reads (CIF, POSCAR, extxyz ...) or an ``ase.build``
prototype given by name and parameters, with a provenance text kept beside the atoms.

Spec text (CLI ``--reference``):

* a path to any file :func:`ase.io.read` reads, e.g. ``MoS2.cif`` or ``POSCAR``;
* ``proto:mx2:formula=MoS2,a=3.19[,thickness=3.19,kind=2H]`` (:func:`ase.build.mx2`);
* ``proto:perovskite:formula=SrTiO3,a=3.905`` (cubic ABX3 built with
  :func:`ase.spacegroup.crystal`, space group 221: A at the corner, B at the body centre);
* ``proto:bulk:name=Cu,crystalstructure=fcc,a=3.61`` or the short forms ``proto:fcc:name=Cu``,
  ``proto:bcc:…``, ``proto:hcp:…``, ``proto:rocksalt:…``, ``proto:zincblende:…`` …
  (:func:`ase.build.bulk`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ase
import numpy as np
from ase import Atoms
from ase.formula import Formula
from ase.io import read as ase_read

from ..errors import ExportError

#: In-plane lattice constants (Å) used when a prototype spec omits ``a`` and by
#: :func:`default_reference`: 2H TMD monolayers (experimental bulk a, ±0.02 Å) and cubic
#: perovskites (room-temperature pseudo-cubic a). Starting structures only: relax them.
DEFAULT_LATTICE_A: dict[str, float] = {
    "MoS2": 3.16,
    "MoSe2": 3.288,
    "MoTe2": 3.52,
    "WS2": 3.153,
    "WSe2": 3.282,
    "WTe2": 3.49,
    "SrTiO3": 3.905,
    "BaTiO3": 4.00,
    "PbTiO3": 3.97,
    "LaAlO3": 3.79,
    "KTaO3": 3.989,
}

#: 2H TMD layer thickness (chalcogen–chalcogen along c, Å; approximate PBE values).
DEFAULT_THICKNESS_A: dict[str, float] = {
    "MoS2": 3.19, "MoSe2": 3.34, "MoTe2": 3.60, "WS2": 3.14, "WSe2": 3.34, "WTe2": 3.59,
}

_BULK_STRUCTURES = ("sc", "fcc", "bcc", "hcp", "diamond", "zincblende", "rocksalt",
                    "cesiumchloride", "fluorite", "wurtzite")


@dataclass(frozen=True, eq=False)
class Reference:
    """A reference crystal and where it came from.

    Attributes
    ----------
    atoms : ase.Atoms
        The crystal (positions in Å, a cell; ``pbc`` False along a slab's normal).
    source : str
        The spec it was made from (file path or ``proto:…`` text).
    provenance : str
        How it was made: the ASE call with its parameters, or the file's name and sha256.
    zone : tuple of int or None
        Zone axis [uvw] in the crystal's cell, when given with the reference.
    """

    atoms: Atoms
    source: str
    provenance: str
    zone: tuple[int, int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def formula(self) -> str:
        """Reduced formula, metal order (``"MoS2"``, ``"SrTiO3"``)."""
        return _reduced(self.atoms.get_chemical_formula())

    @property
    def elements(self) -> set[str]:
        return set(self.atoms.get_chemical_symbols())


def _reduced(formula: str) -> str:
    f = Formula(formula)
    return str(f.reduce()[0].format("metal"))


def parse_zone(text: Any) -> tuple[int, int, int] | None:
    """A zone axis from ``"001"``, ``"1-10"``, ``"1,1,0"`` or a 3-sequence; None passes.

    Examples
    --------
    >>> parse_zone("001"), parse_zone("1-10"), parse_zone("1,1,1")
    ((0, 0, 1), (1, -1, 0), (1, 1, 1))
    """
    if text is None or text == "":
        return None
    if isinstance(text, str):
        s = text.strip().strip("[]")
        if "," in s or " " in s:
            parts = [p for p in s.replace(",", " ").split() if p]
        else:
            parts, i = [], 0
            while i < len(s):
                if s[i] == "-" and i + 1 < len(s):
                    parts.append(s[i : i + 2])
                    i += 2
                else:
                    parts.append(s[i])
                    i += 1
        try:
            uvw = tuple(int(p) for p in parts)
        except ValueError:
            uvw = ()
    else:
        try:
            uvw = tuple(int(v) for v in text)
        except (TypeError, ValueError):
            uvw = ()
    if len(uvw) != 3 or not any(uvw):
        raise ExportError(f"zone axis {text!r}: expected three integers such as 001 or 1-10")
    return uvw  # type: ignore[return-value]


def _params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExportError(f"reference parameter {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def _number(params: dict[str, str], key: str, spec: str, default: float | None) -> float:
    if key not in params:
        if default is None:
            raise ExportError(f"reference {spec!r}: give the parameter {key}=… (Å)")
        return float(default)
    try:
        v = float(params[key])
    except ValueError:
        raise ExportError(f"reference {spec!r}: {key}={params[key]!r} is not a number") from None
    if not (np.isfinite(v) and v > 0):
        raise ExportError(f"reference {spec!r}: {key} must be > 0, got {v}")
    return v


def _prototype(spec: str) -> tuple[Atoms, str]:
    body = spec[len("proto:"):]
    name, _, rest = body.partition(":")
    name = name.strip().lower()
    params = _params(rest)
    if name == "mx2":
        from ase.build import mx2

        formula = params.get("formula", "MoS2")
        key = _formula_key(formula, spec)
        a = _number(params, "a", spec, DEFAULT_LATTICE_A.get(key, 3.18))
        t = _number(params, "thickness", spec, DEFAULT_THICKNESS_A.get(key, 3.19))
        kind = params.get("kind", "2H")
        try:
            atoms = mx2(formula=formula, kind=kind, a=a, thickness=t, vacuum=None)
        except Exception as exc:
            raise ExportError(f"reference {spec!r}: ase.build.mx2 failed: {exc}") from exc
        return atoms, f"ase.build.mx2(formula={formula!r}, kind={kind!r}, a={a}, thickness={t})"
    if name == "perovskite":
        from ase.spacegroup import crystal

        formula = params.get("formula", "SrTiO3")
        key = _formula_key(formula, spec)
        counts = Formula(key).count()
        elems = [e for e in Formula(formula).count()]
        threes = [e for e in elems if counts[e] == 3]
        if len(counts) != 3 or sum(counts.values()) != 5 or len(threes) != 1:
            raise ExportError(f"reference {spec!r}: a perovskite formula is ABX3, got {formula!r}")
        anion = threes[0]
        a_site, b_site = [e for e in elems if e != anion]
        a = _number(params, "a", spec, DEFAULT_LATTICE_A.get(key))
        atoms = crystal([a_site, b_site, anion], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)],
                        spacegroup=221, cellpar=[a, a, a, 90, 90, 90])
        return atoms, (f"ase.spacegroup.crystal([{a_site!r}, {b_site!r}, {anion!r}], "
                       f"basis=[(0,0,0),(.5,.5,.5),(.5,.5,0)], spacegroup=221, a={a})")
    if name == "bulk" or name in _BULK_STRUCTURES:
        from ase.build import bulk

        kwargs: dict[str, Any] = {}
        if name != "bulk":
            kwargs["crystalstructure"] = name
        elif "crystalstructure" in params:
            kwargs["crystalstructure"] = params["crystalstructure"]
        symbol = params.get("name", params.get("formula"))
        if not symbol:
            raise ExportError(f"reference {spec!r}: give name=… (e.g. name=Cu)")
        for k in ("a", "c"):
            if k in params:
                kwargs[k] = _number(params, k, spec, None)
        if "cubic" in params:
            kwargs["cubic"] = params["cubic"].lower() in ("1", "true", "yes")
        try:
            atoms = bulk(symbol, **kwargs)
        except Exception as exc:
            raise ExportError(f"reference {spec!r}: ase.build.bulk failed: {exc}") from exc
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return atoms, f"ase.build.bulk({symbol!r}, {args})"
    raise ExportError(
        f"reference {spec!r}: unknown prototype {name!r}; expected mx2, perovskite, bulk or "
        f"one of {', '.join(_BULK_STRUCTURES)}"
    )


def _formula_key(formula: str, spec: str) -> str:
    try:
        return _reduced(formula)
    except Exception:
        raise ExportError(f"reference {spec!r}: {formula!r} is not a chemical formula") from None


def load_reference(spec: str, zone: Any = None) -> Reference:
    """A reference crystal from a spec text (file path or ``proto:NAME:key=value,…``).

    Parameters
    ----------
    spec : str
        See the module docstring.
    zone : str or sequence of int, optional
        Zone axis stored with the reference (``"001"``).

    Returns
    -------
    Reference

    Raises
    ------
    ExportError
        Unknown prototype, bad parameter, unreadable file (the message names it).

    Examples
    --------
    >>> ref = load_reference("proto:mx2:formula=MoSe2,a=3.288", zone="001")
    >>> ref.formula, ref.zone, len(ref.atoms)
    ('MoSe2', (0, 0, 1), 3)
    >>> load_reference("proto:perovskite:formula=SrTiO3").atoms.cell.lengths().round(3).tolist()
    [3.905, 3.905, 3.905]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ExportError(f"reference: expected a file path or proto:… text, got {spec!r}")
    spec = spec.strip()
    z = parse_zone(zone)
    if spec.startswith("proto:"):
        atoms, prov = _prototype(spec)
        prov = f"{prov}; ase {ase.__version__}"
    else:
        path = Path(os.path.expanduser(spec))
        if not path.is_file():
            raise ExportError(f"reference {spec}: no such file")
        try:
            atoms = ase_read(path)
        except Exception as exc:
            raise ExportError(f"reference {spec}: ase.io.read cannot read it: {exc}") from exc
        if isinstance(atoms, list):
            atoms = atoms[-1]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        prov = f"file {path.name} sha256:{digest}; read by ase {ase.__version__}"
    if len(atoms) == 0:
        raise ExportError(f"reference {spec}: holds no atoms")
    return Reference(atoms=atoms, source=spec, provenance=prov, zone=z)


def default_reference(formula: str | None) -> Reference | None:
    """The built-in prototype of a known formula (2H TMD monolayer or cubic perovskite in
    :data:`DEFAULT_LATTICE_A`), zone [001]; None for any other formula.

    Examples
    --------
    >>> default_reference("MoSe2").source
    'proto:mx2:formula=MoSe2,a=3.288,thickness=3.34'
    >>> default_reference("Unobtainium") is None
    True
    """
    if not formula:
        return None
    try:
        key = _reduced(formula)
    except Exception:
        return None
    if key not in DEFAULT_LATTICE_A:
        return None
    if key in DEFAULT_THICKNESS_A:
        spec = (f"proto:mx2:formula={key},a={DEFAULT_LATTICE_A[key]},"
                f"thickness={DEFAULT_THICKNESS_A[key]}")
    else:
        spec = f"proto:perovskite:formula={key},a={DEFAULT_LATTICE_A[key]}"
    ref = load_reference(spec, zone="001")
    return Reference(ref.atoms, ref.source, f"motifcat default for {key}: {ref.provenance}",
                     ref.zone)


def reference_to_json(ref: Reference) -> str:
    """The reference as JSON text (atoms, cell, pbc, source, provenance, zone) for the catalog.

    Examples
    --------
    >>> ref = load_reference("proto:fcc:name=Cu,a=3.61")
    >>> back = reference_from_json(reference_to_json(ref))
    >>> back.formula, back.source, np.allclose(back.atoms.cell, ref.atoms.cell)
    ('Cu', 'proto:fcc:name=Cu,a=3.61', True)
    """
    a = ref.atoms
    return json.dumps({
        "symbols": a.get_chemical_symbols(),
        "positions": np.round(a.positions, 6).tolist(),
        "cell": np.round(np.asarray(a.cell), 6).tolist(),
        "pbc": [bool(p) for p in a.pbc],
        "source": ref.source,
        "provenance": ref.provenance,
        "zone": None if ref.zone is None else list(ref.zone),
    })


def reference_from_json(text: str) -> Reference:
    """Inverse of :func:`reference_to_json`.

    Raises
    ------
    ExportError
        If the text is not a stored reference.
    """
    try:
        d = json.loads(text)
        atoms = Atoms(symbols=d["symbols"], positions=d["positions"], cell=d["cell"],
                      pbc=d["pbc"])
        return Reference(atoms, str(d["source"]), str(d["provenance"]),
                         None if d.get("zone") is None else tuple(d["zone"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"stored reference is malformed: {exc}") from exc

"""Extract the experimental example images from a downloaded temul-toolkit wheel (``make
bench-real``): ``python bench/_real_extract.py CACHE_DIR OUT_DIR``. Standard library only."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

# member of the wheel -> file name under bench/data/real/
MEMBERS = {
    "temul/example_data/experimental/example_Se_implanted_MoS2.dm3": "Se_implanted_MoS2.dm3",
    "temul/example_data/experimental/example_Au_nanoparticle.emd": "Au_nanoparticle.emd",
}


def main(cache: str, out: str) -> None:
    wheels = sorted(Path(cache).glob("temul_toolkit-*.whl"))
    if not wheels:
        raise SystemExit(f"no temul_toolkit wheel in {cache}: run `make bench-real`")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as z:
        for member, name in MEMBERS.items():
            (out_dir / name).write_bytes(z.read(member))
            print(f"{wheels[-1].name}:{member} -> {out_dir / name}")
        lic = [n for n in z.namelist() if n.endswith("LICENSE")]
        if lic:
            (out_dir / "LICENSE-temul-toolkit.txt").write_bytes(z.read(lic[0]))


if __name__ == "__main__":
    main(*sys.argv[1:3])

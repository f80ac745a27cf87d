"""Helpers for the bulk tests (imported by tests; not fixtures)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

EXAMPLE = Path(__file__).parent / "data" / "bulk_example"


def with_iptv(tmp_path: Path, bearer: str) -> Path:
    """The example bundle with an IPTV service GZ-S0009 riding on `bearer`."""
    bundle = tmp_path / "with-iptv"
    shutil.copytree(EXAMPLE, bundle)
    path = bundle / "services.csv"
    rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
    rows = [rows[0] + ["bearer"]] + [r + [""] for r in rows[1:]]
    rows.append(["GZ-S0009", "GZ", "iptv", "FTTH", "active", "C0001", "GZ/address:天河路1號A棟", "", "BSS-GZ-S0009",
                 "", "", bearer])
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return bundle

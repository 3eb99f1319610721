"""Cost of the case store's integrity record: BLAKE2b checksums at write time, stat / full checks at rerun.

Usage: ``PYTHONPATH=src python benchmarks/store_integrity_bench.py [HIPPOCAMPUS_IMAGE]``. Prints one table row per
case kind: array bytes on disk, write time without the record's checksums, checksum time, the default rerun check
(size + mtime: one stat per file) and the full check (``preprocess --check-store``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autounet.io import read_images
from autounet.io.geometry import ImageGeometry
from autounet.preprocessing import CaseProperties
from autounet.preprocessing.store import (
    DATA_COMPRESSION,
    SEG_COMPRESSION,
    _write_b2nd,
    case_files,
    check_case,
    file_record,
    write_case,
)


def _props(case: str, shape: tuple[int, ...]) -> CaseProperties:
    return CaseProperties(
        case_id=case, configuration="3d_fullres", plans_sha256="x", geometry=ImageGeometry(spacing=(1.0, 1, 1)),
        original_spacing=(1.0, 1.0, 1.0), transpose_forward=(0, 1, 2), shape_before_cropping=shape,
        bbox_used_for_cropping=tuple((0, s) for s in shape), shape_after_cropping_and_before_resampling=shape,
        spacing_after_resampling=(1.0, 1.0, 1.0), shape_after_resampling=shape,
        class_locations={1: np.zeros((10, 4), np.int64)})


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(name: str, data: np.ndarray, seg: np.ndarray, patch: tuple[int, ...]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = case_files(folder, "c")
        arrays = _best(lambda: (_write_b2nd(files["data"], data, patch, DATA_COMPRESSION),
                                _write_b2nd(files["seg"], seg, patch, SEG_COMPRESSION)), 3)
        write_case(folder, data, seg, _props("c", data.shape[1:]), patch_size=patch)
        size = sum(files[k].stat().st_size for k in ("data", "seg", "locations"))
        sums = _best(lambda: [file_record(files[k]) for k in ("data", "seg", "locations")])
        records = {k: file_record(files[k]) for k in ("data", "seg", "locations")}
        stat = _best(lambda: check_case(folder, "c", records), 50)
        full = _best(lambda: check_case(folder, "c", records, full=True))
    return (f"| {name} | {data.shape} | {size / 1e6:.2f} MB | {arrays * 1e3:.1f} ms | {sums * 1e3:.2f} ms "
            f"({100 * sums / arrays:.1f} %) | {stat * 1e6:.0f} us | {full * 1e3:.2f} ms |")


def main() -> None:
    rows = ["| case | array shape | stored bytes | write arrays | checksums (share of write) | default check "
            "(stat) | full check |", "|---|---|---|---|---|---|---|"]
    if len(sys.argv) > 1:
        img, _ = read_images([sys.argv[1]])
        seg = (img > np.percentile(img, 90)).astype(np.int16)
        rows.append(bench("Hippocampus (raw grid)", img.astype(np.float32), seg, (40, 56, 40)))
    rng = np.random.default_rng(0)
    big = rng.normal(size=(1, 256, 256, 256)).astype(np.float32)
    big_seg = (big > 1.5).astype(np.int16)
    rows.append(bench("synthetic 256^3 noise", big, big_seg, (128, 128, 128)))
    print("\n".join(rows))


if __name__ == "__main__":
    main()

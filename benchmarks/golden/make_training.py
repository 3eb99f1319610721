"""Make the training golden files with the reference (nnunetv2 2.8.1): cross-validation splits.

Run: ``.venv/bin/python benchmarks/golden/make_training.py`` (uses the reference venv through
``benchmarks/reference.py``). Writes ``tests/data/golden/training/splits.json``: for several case counts, the
reference's ``generate_crossval_split`` over sorted identifiers ``case_000 ...`` (as ``do_split`` calls it), and
its 80:20 fallback for folds 5 and 7.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import run_reference_python  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "golden" / "training" / "splits.json"
CODE = r"""
import json
import numpy as np
from nnunetv2.utilities.crossval_split import generate_crossval_split
out = {}
for n in (5, 7, 13, 52, 260):
    ids = sorted(f"case_{i:03d}" for i in range(n))
    folds = [{"train": [str(x) for x in s["train"]], "val": [str(x) for x in s["val"]]}
             for s in generate_crossval_split(ids, seed=12345, n_splits=5)]
    fallback = {}
    for k in (5, 7):
        # the trainer's do_split fallback, verbatim semantics
        rnd = np.random.RandomState(seed=12345 + k)
        keys = np.sort(ids)
        idx_tr = rnd.choice(len(keys), int(len(keys) * 0.8), replace=False)
        idx_val = [i for i in range(len(keys)) if i not in idx_tr]
        fallback[str(k)] = {"train": [str(keys[i]) for i in idx_tr], "val": [str(keys[i]) for i in idx_val]}
    out[str(n)] = {"folds": folds, "fallback": fallback}
print(json.dumps(out))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = run_reference_python(CODE, Path(tmp))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(json.loads(text), indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""``autounet run`` for the fault suite, through the same API the CLI calls, with a fixed training seed.

``python fault_driver.py WS DATASET`` runs ``autounet.pipeline.run`` for ``2d`` fold 0 with a tiny deterministic
budget (the CLI draws a random seed per training, which would make two runs differ). Errors end as the CLI's do:
one line on stderr, exit code 1.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from autounet.errors import AutounetError
    from autounet.pipeline import RunOptions, run
    from autounet.workspace import Workspace

    root, dataset = Path(argv[0]), argv[1]
    options = RunOptions(configurations=("2d",), folds=(0,), workers=1, budget="short",
                         training_overrides={"seed": 0, "deterministic": True, "epochs": 3,
                                             "iterations_per_epoch": 3, "val_iterations": 1, "workers": 0})
    try:
        summary = run(Workspace.at(root), dataset, options=options,
                      on_step=lambda step, message: print(f"[{step}] {message}", flush=True))
    except AutounetError as exc:
        print(f"fault_driver run: error: {exc}", file=sys.stderr)
        return 1
    print(f"trained: {summary.trained}; reused: {summary.reused}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Golden tests: our planner reproduces the reference's plans files field by field (see golden README)."""

from __future__ import annotations

import json

import pytest
from _planning_golden import GOLDEN, diff, manifest, our_reference_plans

from autounet.planning.memory import feature_map_size

ENTRIES = manifest()


def test_golden_set_is_present() -> None:
    datasets = {e["dataset"] for e in ENTRIES}
    assert "Dataset004_Hippocampus" in datasets and len(datasets) >= 6 and len(ENTRIES) >= 25


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["plans_file"] for e in ENTRIES])
def test_plans_equal_reference(entry: dict) -> None:
    reference = json.loads((GOLDEN / entry["plans_file"]).read_text(encoding="utf-8"))
    differences = diff(our_reference_plans(entry), reference)
    assert not differences, f"{entry['plans_file']} differs from the reference:\n" + "\n".join(differences)


VRAM = json.loads((GOLDEN / "vram_estimates.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", VRAM, ids=[f"{c['network']}-{'x'.join(map(str, c['patch_size']))}" for c in VRAM])
def test_vram_proxy_equals_reference_networks(case: dict) -> None:
    kwargs = {k: v for k, v in case.items() if k not in ("network", "expected")}
    assert feature_map_size(case["network"], **kwargs) == case["expected"]


def test_diff_reports_readably() -> None:
    out = diff({"a": [1, 2], "b": {"c": 1.0}}, {"a": [1, 3], "b": {"c": 1, "d": 2}})
    assert out == ["a[1]: ours 2 != reference 3", "b.d: missing in ours (reference: 2)"]

"""``autounet augment-preview`` on a few real Hippocampus cases, through the public CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from autounet.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def workspace(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = shared_datasets / "Hippocampus"
    root = tmp_path_factory.mktemp("augpreview")
    for sub in ("images", "labels"):
        (root / sub).mkdir()
    for case in sorted(p.name for p in (src / "labels").glob("hippocampus_0[0-3]*.nii.gz")
                       if (src / "images" / p.name).is_file())[:6]:
        for sub in ("images", "labels"):
            shutil.copy(src / sub / case, root / sub / case)
    ws = root / "ws"
    assert main(["import", "--workspace", str(ws), "--images", str(root / "images"), "--labels",
                 str(root / "labels"), "--id", "4", "--name", "Hippocampus", "--channel", "MRI",
                 "--label", "background=0", "--label", "Anterior=1", "--label", "Posterior=2", "--quiet"]) == 0
    assert main(["plan", "--workspace", str(ws), "4", "-c", "2d", "3d_fullres", "--preprocess", "-j", "1",
                 "--quiet"]) == 0
    return ws


@pytest.mark.parametrize(("config", "n"), [("3d_fullres", 4), ("2d", 3)])
def test_preview_png(workspace: Path, tmp_path: Path, config: str, n: int,
                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"{config}.png"
    assert main(["augment-preview", "--workspace", str(workspace), "4", config, "-o", str(out), "-n", str(n),
                 "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[1] > 250 * n


def test_unknown_preset_is_a_usage_error(workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["augment-preview", "--workspace", str(workspace), "4", "2d", "-o", str(tmp_path / "x.png"),
                 "--augmentation", "defualt"])
    assert code == 2
    assert "Did you mean 'default'" in capsys.readouterr().err

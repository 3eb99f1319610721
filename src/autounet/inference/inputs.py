"""Which cases to predict: a folder in the dataset's format, a list of files, or DICOM series folders.

Files are grouped into cases by the dataset naming rule ``<case>_<XXXX><ending>`` (channel ``XXXX``). A case must
have the channels ``0000 .. n-1`` the model was trained with; one file may hold several channels (an RGB/RGBA
PNG, JPEG or TIFF, a 4D file: the natural-image convention is one ``<case>_0000.png`` for channels R, G, B), so
fewer files than channels are accepted when they are ``0000 .. k-1`` and the channels they hold are counted when
the case is read (:func:`check_channels`). A case that cannot be predicted is kept in the list with an ``error``
(so that it is reported by name at the end while the other cases are predicted). A folder of DICOM files is one
case (named after the folder); a folder whose sub-folders are DICOM series gives one case per sub-folder. A list of
plain files without channel suffixes gives one case per file (holding all the model's channels). A
:class:`CaseInput` given as a source is taken as it is (a dataset's case with its listed files, e.g. DICOM series
folders as channels).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autounet.errors import UsageError

CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ending>\.[A-Za-z0-9]+(?:\.gz)?)$")
PLAIN_FILE = re.compile(r"^(?P<case>.+?)(?P<ending>\.[A-Za-z0-9]+(?:\.gz)?)$")
DICOM_ENDINGS = (".dcm", ".dicom", ".ima")
DICOM_ENDING = ""


@dataclass(frozen=True)
class CaseInput:
    """One case to predict.

    Attributes:
        case_id: output name stem.
        images: channel files in channel order, or the one DICOM series folder.
        ending: the input's file ending (``.nii.gz``, ``.png``, ...; ``""`` for a DICOM series).
        error: why the case cannot be predicted (unexpected channel files ...); None when it can.
        missing: channel files that are absent; fine if the present files hold all channels (checked on reading).
    """

    case_id: str
    images: tuple[Path, ...]
    ending: str
    error: str | None = None
    missing: tuple[str, ...] = ()

    @property
    def is_dicom(self) -> bool:
        return self.ending == DICOM_ENDING


def is_dicom_file(path: Path) -> bool:
    """A DICOM file by ending or by the ``DICM`` marker at byte 128."""
    if path.name.lower().endswith(DICOM_ENDINGS):
        return True
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_series_dir(path: Path) -> bool:
    """A folder holding DICOM files directly."""
    if not path.is_dir():
        return False
    files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")]
    return bool(files) and any(is_dicom_file(p) for p in files[:8])


def _group_channel_files(files: Sequence[Path], num_channels: int) -> list[CaseInput]:
    groups: dict[str, dict[int, Path]] = {}
    endings: dict[str, str] = {}
    for f in files:
        m = CHANNEL_FILE.match(f.name)
        if m is None:
            continue
        case, channel = m["case"], int(m["channel"])
        if channel in groups.get(case, {}):
            msg = f"Case {case!r} appears twice in the input ({groups[case][channel]} and {f})."
            raise UsageError(msg)
        groups.setdefault(case, {})[channel] = f
        endings.setdefault(case, m["ending"])
    cases = []
    for case in sorted(groups):
        channels = groups[case]
        expected = list(range(num_channels))
        error = None
        missing = [f"{case}_{c:04d}{endings[case]}" for c in expected if c not in channels]
        extra = [channels[c].name for c in sorted(channels) if c >= num_channels]
        leading = sorted(channels) == list(range(len(channels)))  # 0000 .. k-1: the files may hold all channels
        if extra or (missing and not leading):
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected {', '.join(extra)}")
            error = f"the model needs {num_channels} channel(s) (_0000 .. _{num_channels - 1:04d}): {'; '.join(parts)}"
        images = tuple(channels[c] for c in sorted(channels) if c < num_channels)
        cases.append(CaseInput(case_id=case, images=images, ending=endings[case], error=error,
                               missing=tuple(missing) if error is None else ()))
    return cases


def check_channels(case: CaseInput, n_read: int, num_channels: int) -> None:
    """Raise ``UsageError`` naming the case and its files when they hold ``n_read`` != ``num_channels`` channels."""
    if n_read == num_channels:
        return
    names = ", ".join(p.name for p in case.images)
    msg = (f"case {case.case_id}: {names} hold(s) {n_read} channel(s) but the model needs {num_channels} "
           f"(files _0000 .. _{num_channels - 1:04d}, or one file holding all of them, e.g. an RGB image)")
    if case.missing:
        msg += f"; missing {', '.join(case.missing)}"
    raise UsageError(msg)


def _from_folder(folder: Path, num_channels: int) -> list[CaseInput]:
    if is_dicom_series_dir(folder):
        return [CaseInput(case_id=folder.name, images=(folder,), ending=DICOM_ENDING)]
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    cases = _group_channel_files(files, num_channels)
    if cases:
        return cases
    series = [d for d in sorted(folder.iterdir()) if is_dicom_series_dir(d)]
    if series:
        return [CaseInput(case_id=d.name, images=(d,), ending=DICOM_ENDING) for d in series]
    msg = (f"No cases found in {folder}: expected files named <case>_0000<ending> (one per channel), a DICOM "
           "series folder, or a folder of DICOM series folders.")
    raise UsageError(msg)


def _from_files(files: Sequence[Path], num_channels: int) -> list[CaseInput]:
    cases = _group_channel_files(files, num_channels)
    named = {p for c in cases for p in c.images}
    rest = [f for f in files if f not in named and not CHANNEL_FILE.match(f.name)]
    for f in rest:  # one file per case, holding all channels (checked when read)
        m = PLAIN_FILE.match(f.name)
        case, ending = (m["case"], m["ending"]) if m else (f.name, "")
        cases.append(CaseInput(case_id=case, images=(f,), ending=ending))
    return cases


def discover_cases(sources: Sequence[str | os.PathLike[str] | CaseInput], *, num_channels: int) -> list[CaseInput]:
    """The cases named by ``sources`` (one folder, several files, DICOM folders, or given cases), sorted by case id.

    Raises ``UsageError`` for missing paths, duplicated case ids or inputs that name no case.
    """
    if not sources:
        msg = "No input given."
        raise UsageError(msg)
    given = [s for s in sources if isinstance(s, CaseInput)]
    paths = [Path(s) for s in sources if not isinstance(s, CaseInput)]
    for p in (*paths, *(p for c in given for p in c.images)):
        if not p.exists():
            msg = f"Input not found: {p}"
            raise UsageError(msg)
    cases: list[CaseInput] = list(given)
    files = [p for p in paths if p.is_file()]
    for folder in (p for p in paths if p.is_dir()):
        cases.extend(_from_folder(folder, num_channels))
    if files:
        cases.extend(_from_files(files, num_channels))
    seen: dict[str, CaseInput] = {}
    for case in cases:
        if case.case_id in seen:
            first = seen[case.case_id].images[0]
            msg = f"Case {case.case_id!r} appears twice in the input ({case.images[0]} and {first})."
            raise UsageError(msg)
        seen[case.case_id] = case
    return sorted(cases, key=lambda c: c.case_id)


def shard(cases: Sequence[CaseInput], *, part: int, parts: int) -> list[CaseInput]:
    """Part ``part`` of ``parts`` (the reference's ``[part::parts]`` slicing of the sorted case list)."""
    if parts < 1 or not 0 <= part < parts:
        msg = f"--part must be in 0 .. {parts - 1} for --parts {parts}, got {part}."
        raise UsageError(msg)
    return list(cases[part::parts])

"""DICOM SEG: label maps written as Segmentation objects that reference their source series, and read back.

Writing needs the source series: a segmentation predicted from a DICOM series folder (the ``dicom_series`` reader
records its files, in the array's slice order, in ``geometry.extras["files"]``) is written as one BINARY
Segmentation with one segment per foreground label (segment numbers 1..N in label-value order, segment labels from
``dataset.json`` via ``geometry.extras["segment_labels"]``); frames reference the source instances, so a PACS or
viewer shows the result on the series it came from. Empty segments are kept (an empty frame set is fine).

Reading: a Segmentation file becomes a label map whose values are the segment numbers (or, given
``labels`` ``name -> value``, the values whose names match the segment labels). When the referenced series is at
hand (``reference=`` its folder) the map is placed on that series' grid, slice for slice; otherwise on the grid of
the SEG's own frames (``highdicom``'s volume). Overlapping segments cannot be one label map: a clear
``ImageIOError`` names the file and the segments.

Needs the optional ``dicom`` extra (``highdicom``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from autounet.errors import ImageIOError
from autounet.io._base import ReaderWriter, register
from autounet.io.geometry import ImageGeometry

SEG_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
SOFTWARE = "autounet"


def _highdicom() -> Any:
    try:
        import highdicom
    except ImportError as exc:  # pragma: no cover - depends on the installation
        msg = "DICOM SEG needs the 'highdicom' package: pip install 'autounet[dicom]'."
        raise ImageIOError(msg) from exc
    return highdicom


def is_dicom_seg(path: Path) -> bool:
    """Whether ``path`` is a DICOM file of a Segmentation SOP class (header only)."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - a probe answers yes/no
        return False
    return str(getattr(ds, "SOPClassUID", "")) in SEG_SOP_CLASSES


# ---- writing -------------------------------------------------------------------------------------------------------
def _segment_descriptions(hd: Any, names: Sequence[str]) -> list[Any]:
    from pydicom.sr.codedict import codes

    from autounet import __version__

    algorithm = hd.AlgorithmIdentificationSequence(name=SOFTWARE, version=str(__version__),
                                                   family=codes.DCM.ArtificialIntelligence)
    return [hd.seg.SegmentDescription(segment_number=i + 1, segment_label=name[:64],
                                      segmented_property_category=codes.SCT.AnatomicalStructure,
                                      segmented_property_type=codes.SCT.Tissue,
                                      algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                      algorithm_identification=algorithm)
            for i, name in enumerate(names)]


def write_dicom_seg(seg: np.ndarray, path: str | Path, *, source_files: Sequence[str | Path],
                    segment_labels: Mapping[int, str], series_description: str = "autounet segmentation") -> None:
    """Write a ``(z, y, x)`` label map as a DICOM Segmentation referencing ``source_files`` (one per slice, in order).

    ``segment_labels`` maps each foreground label value to its name; each becomes one segment (numbered 1..N in
    value order). Values not in ``segment_labels`` are refused. Not atomic by itself (see :class:`DicomSegIO`).
    """
    import pydicom

    hd = _highdicom()
    seg = np.asarray(seg)
    seg = seg[0] if seg.ndim == 4 else seg
    values = sorted(int(v) for v in segment_labels if int(v) != 0)
    if not values:
        msg = f"Cannot write DICOM SEG {path}: the dataset has no foreground labels."
        raise ImageIOError(msg)
    unknown = sorted(set(np.unique(seg).tolist()) - {0, *values})
    if unknown:
        msg = f"Cannot write DICOM SEG {path}: label values {unknown} have no segment (known: {values})."
        raise ImageIOError(msg)
    sources = [_source(pydicom.dcmread(str(f))) for f in source_files]
    if len(sources) != seg.shape[0] or any((int(s.Rows), int(s.Columns)) != seg.shape[1:] for s in sources):
        msg = (f"Cannot write DICOM SEG {path}: the label map {seg.shape} does not match its source series "
               f"({len(sources)} slices of {sources[0].Rows}x{sources[0].Columns}).")
        raise ImageIOError(msg)
    masks = np.stack([seg == v for v in values], axis=-1)  # (frames, rows, cols, segments)
    first = sources[0]
    with warnings.catch_warnings():  # highdicom warns about the source's own tags (e.g. one-part patient names)
        warnings.simplefilter("ignore", UserWarning)
        obj = _segmentation(hd, sources, masks, segment_labels, values, first, series_description)
    obj.save_as(str(path))


def _segmentation(hd: Any, sources: list[Any], masks: np.ndarray, segment_labels: Mapping[int, str],
                  values: list[int], first: Any, series_description: str) -> Any:
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(hd, [segment_labels[v] for v in values]),
        series_instance_uid=hd.UID(), series_number=int(getattr(first, "SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=SOFTWARE, manufacturer_model_name=SOFTWARE,
        software_versions=_version(), device_serial_number="0", series_description=series_description[:64],
        omit_empty_frames=False)


def _source(ds: Any) -> Any:
    """A source instance with empty SOP identifiers filled from its file meta (some exporters leave them blank)."""
    meta = getattr(ds, "file_meta", None)
    for tag, meta_tag in (("SOPClassUID", "MediaStorageSOPClassUID"), ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
        if not str(getattr(ds, tag, "") or "") and meta is not None and getattr(meta, meta_tag, None):
            setattr(ds, tag, getattr(meta, meta_tag))
    return ds


def _version() -> str:
    from autounet import __version__

    return str(__version__)


# ---- reading -------------------------------------------------------------------------------------------------------
def _value_map(seg: Any, labels: Mapping[str, int] | None) -> dict[int, int]:
    """Segment number -> label value (by segment label name when ``labels`` are given, else the number itself)."""
    numbers = [int(n) for n in seg.get_segment_numbers()]
    if not labels:
        return {n: n for n in numbers}
    by_name = {str(k).lower(): int(v) for k, v in labels.items() if isinstance(v, int | np.integer)}
    out = {}
    for n in numbers:
        name = str(seg.get_segment_description(n).segment_label).lower()
        out[n] = by_name.get(name, n)
    return out


def _relabel(array: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    if all(k == v for k, v in mapping.items()):
        return array
    out = np.zeros_like(array)
    for number, value in mapping.items():
        out[array == number] = value
    return out


def _overlap_error(path: Path, exc: Exception) -> ImageIOError:
    return ImageIOError(f"DICOM SEG {path} has overlapping segments, which cannot form one label map; export each "
                        f"segment as its own label file (or merge them into regions first). ({exc})")


def _slices_along_normal(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order slices along the row x column normal, as the DICOM series reader does (flip axis 0 if needed)."""
    normal = np.cross(affine[:3, 2], affine[:3, 1])
    if array.shape[0] > 1 and float(np.dot(affine[:3, 0], normal)) < 0:
        affine = affine.copy()
        affine[:3, 3] = affine[:3, 3] + (array.shape[0] - 1) * affine[:3, 0]
        affine[:3, 0] = -affine[:3, 0]
        array = array[::-1].copy()
    return array, affine


def _geometry_from_affine(affine: np.ndarray, extras: dict[str, Any]) -> ImageGeometry:
    """Array axes (slice, row, column) with a highdicom LPS affine → ITK-order origin/direction, array-order spacing."""
    cols = affine[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)  # per array axis (slice, row, col)
    unit = cols / spacing
    direction = unit[:, ::-1]  # ITK index order: (col, row, slice)
    sz, sy, sx = (float(s) for s in spacing)
    return ImageGeometry(spacing=(sz, sy, sx), origin=tuple(float(o) for o in affine[:3, 3]),
                         direction=tuple(float(d) for d in direction.ravel()), reader="dicom_seg", extras=extras)


def read_dicom_seg(path: str | Path, *, reference: str | Path | None = None,
                   labels: Mapping[str, int] | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Read a DICOM Segmentation as a ``(1, z, y, x)`` label map plus geometry.

    Args:
        path: the SEG file.
        reference: the folder of the referenced series; the map then lies on that series' grid.
        labels: ``name -> value``; segments whose label matches a name get that value (else their number).
    """
    hd = _highdicom()
    path = Path(path)
    try:
        seg = hd.seg.segread(str(path))
    except Exception as exc:
        msg = f"Cannot read DICOM SEG {path}: {type(exc).__name__}: {exc}"
        raise ImageIOError(msg) from exc
    mapping = _value_map(seg, labels)
    names = {n: str(seg.get_segment_description(n).segment_label) for n in mapping}
    extras: dict[str, Any] = {"segments": {str(mapping[n]): names[n] for n in mapping}}
    if reference is not None:
        return _read_on_reference(seg, path, Path(reference), mapping, extras)
    try:
        volume = seg.get_volume(combine_segments=True, relabel=False, dtype=np.uint16)
    except (ValueError, RuntimeError, KeyError) as exc:
        if "overlap" in str(exc).lower():
            raise _overlap_error(path, exc) from exc
        msg = f"Cannot place DICOM SEG {path} on a regular grid: {exc}"
        raise ImageIOError(msg) from exc
    array, affine = _slices_along_normal(np.asarray(volume.array), np.asarray(volume.affine, dtype=np.float64))
    return _relabel(array, mapping)[None], _geometry_from_affine(affine, extras)


def _read_on_reference(seg: Any, path: Path, reference: Path, mapping: Mapping[int, int],
                       extras: dict[str, Any]) -> tuple[np.ndarray, ImageGeometry]:
    import pydicom
    import SimpleITK as sitk

    from autounet.io import read_images

    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(reference))
    referenced = {str(s.SeriesInstanceUID) for s in getattr(seg, "ReferencedSeriesSequence", [])}
    match = [s for s in series if s in referenced] if referenced else list(series)
    if len(match) != 1:
        msg = (f"DICOM SEG {path} references series {sorted(referenced)} but {reference} holds "
               f"{sorted(series) or 'no series'}.")
        raise ImageIOError(msg)
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(reference), match[0])
    uids = [str(_source(pydicom.dcmread(f, stop_before_pixels=True)).SOPInstanceUID) for f in files]
    try:
        # frames are matched to source instances by their references (older writers such as dcmqi leave out
        # SpatialLocationsPreserved); instances without a frame are empty (writers omit empty frames)
        pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True, relabel=False, dtype=np.uint16,
                                                   ignore_spatial_locations=True,
                                                   assert_missing_frames_are_empty=True)
    except (ValueError, RuntimeError, KeyError) as exc:
        if "overlap" in str(exc).lower():
            raise _overlap_error(path, exc) from exc
        msg = f"Cannot place DICOM SEG {path} on the series in {reference}: {exc}"
        raise ImageIOError(msg) from exc
    _, geometry = read_images([reference], reader="dicom_series")
    array = _relabel(np.asarray(pixels), mapping)
    return array[None], geometry.replace(reader="dicom_seg", extras={**extras, "reference": str(reference)})


@register("DicomSegIO")
class DicomSegIO(ReaderWriter):
    """DICOM Segmentation files (``.dcm``): label maps only; writing needs a DICOM series geometry."""

    name: ClassVar[str] = "dicom_seg"
    endings: ClassVar[tuple[str, ...]] = (".dcm",)

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        if not is_dicom_seg(path):
            msg = f"{path} is not a DICOM Segmentation (SEG) object."
            raise ImageIOError(msg)
        return read_dicom_seg(path)

    def probe(self, path: Path) -> bool:
        return path.is_file() and is_dicom_seg(path)

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        files = geometry.extras.get("files")
        if not files:
            msg = (f"Cannot write DICOM SEG {path.name}: it needs a DICOM series input to reference (this case "
                   f"came from a {geometry.reader} file).")
            raise ImageIOError(msg)
        raw = geometry.extras.get("segment_labels") or {}
        labels = {int(k): str(v) for k, v in dict(raw).items()}
        if not labels:
            labels = {int(v): f"label {int(v)}" for v in np.unique(array) if int(v) != 0}
        write_dicom_seg(array, path, source_files=list(files), segment_labels=labels)

"""``ImageGeometry``: where an image lies in physical space, as read from its file.

``spacing`` is in the array's axis order (``(z, y, x)`` for SimpleITK files; ``(999, 1, 1)`` for natural 2D
images). ``origin`` and ``direction`` are in ITK's physical order, exactly as SimpleITK reports them (2 or 3 origin
components; a row-major 2x2 or 3x3 direction matrix), so that a segmentation written with this geometry lands where
the input was. ``extras`` holds reader-specific JSON-serialisable data (a NIfTI affine, an original orientation, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autounet.errors import SchemaError

_KEYS = ("spacing", "origin", "direction", "is_2d", "reader", "extras")


def _floats(values: Any, *, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        msg = f"ImageGeometry: {what} must be a list of numbers, got {values!r}."
        raise SchemaError(msg) from exc


def as_spacing(values: Any) -> tuple[float, float, float]:
    """``values`` as a 3-value spacing (array axis order); raises ``SchemaError`` naming them otherwise."""
    spacing = _floats(values, what="spacing")
    if len(spacing) != 3:
        msg = f"ImageGeometry: spacing needs 3 values (array axis order), got {spacing}."
        raise SchemaError(msg)
    return spacing[0], spacing[1], spacing[2]


@dataclass(frozen=True)
class ImageGeometry:
    """Physical geometry of an image, carried from reading to writing.

    Attributes:
        spacing: voxel size per array axis (3 values, array order ``(a0, a1, a2)``).
        origin: physical position of the first voxel, ITK order (``(x, y, z)``, or ``(x, y)`` for 2D files).
        direction: row-major direction cosine matrix in ITK order (9 values, or 4 for 2D files).
        is_2d: the source file was 2D; arrays are ``(c, 1, H, W)`` and segmentations are written back as 2D.
        reader: registry name of the reader that produced it (``simpleitk``, ``nibabel``, ...).
        extras: reader-specific, JSON-serialisable details (e.g. ``affine`` for nibabel files).
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, ...] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    is_2d: bool = False
    reader: str = "simpleitk"
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spacing = as_spacing(self.spacing)
        origin = _floats(self.origin, what="origin")
        direction = _floats(self.direction, what="direction")
        if len(direction) != len(origin) ** 2:
            msg = (f"ImageGeometry: a {len(origin)}-component origin needs a {len(origin)}x{len(origin)} direction "
                   f"matrix ({len(origin) ** 2} values), got {len(direction)}.")
            raise SchemaError(msg)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "extras", dict(self.extras))

    @property
    def ndim(self) -> int:
        """Number of physical dimensions of the source file (2 or 3)."""
        return len(self.origin)

    def itk_spacing(self) -> tuple[float, ...]:
        """Spacing in ITK order as a file of this geometry stores it (2 values for 2D files)."""
        if self.is_2d:
            return (self.spacing[2], self.spacing[1])
        return tuple(reversed(self.spacing))

    def replace(self, **changes: Any) -> ImageGeometry:
        """A copy with some fields changed."""
        values = {k: getattr(self, k) for k in _KEYS}
        values.update(changes)
        return ImageGeometry(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
            "is_2d": self.is_2d,
            "reader": self.reader,
            "extras": dict(self.extras),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageGeometry:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, Mapping):
            msg = f"ImageGeometry: expected a mapping, got {type(data).__name__}."
            raise SchemaError(msg)
        unknown = sorted(set(data) - set(_KEYS))
        if unknown or "spacing" not in data:
            msg = f"ImageGeometry: unknown key(s) {unknown} or missing 'spacing'. Allowed: {', '.join(_KEYS)}."
            raise SchemaError(msg)
        return cls(**{k: data[k] for k in _KEYS if k in data})

    def reference_properties(self) -> dict[str, Any]:
        """The properties dict the reference's SimpleITKIO produces (``spacing`` + ``sitk_stuff``), for interop."""
        return {
            "spacing": list(self.spacing),
            "sitk_stuff": {
                "spacing": list(self.itk_spacing()),
                "origin": list(self.origin),
                "direction": list(self.direction),
            },
        }

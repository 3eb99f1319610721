"""Label semantics of a dataset: plain labels, regions and the ignore label (the reference's ``LabelManager``).

* **Label mode**: ``labels`` maps names to ints. The network has one output per label (background included,
  ignore excluded); outputs are turned into a segmentation by argmax (softmax nonlinearity).
* **Region mode** (any label value is a list of more than one int): one output per foreground region, sigmoid
  nonlinearity, each region thresholded at 0.5 and painted with its ``regions_class_order`` value, in order.
* The optional ``ignore`` label must be the highest value (``max(all_labels) + 1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from autounet.errors import DatasetError

if TYPE_CHECKING:
    import torch

    from autounet.schemas.dataset import DatasetSpec

Region = tuple[int, ...]
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


def _is_background(value: int | Region) -> bool:
    values = value if isinstance(value, tuple) else (value,)
    return all(v == 0 for v in values)


def _check_background(labels: Mapping[str, Any]) -> None:
    if "background" not in labels:
        msg = f"labels must declare 'background': 0 (got {dict(labels)})."
        raise DatasetError(msg)
    bg = labels["background"]
    if isinstance(bg, (list, tuple)) or bg != 0:
        msg = f"The background label must be the integer 0, got {bg!r}."
        raise DatasetError(msg)


@dataclass(frozen=True)
class LabelSpec:
    """Typed label semantics. Build with :meth:`from_dataset_spec` or :meth:`from_labels`.

    Attributes:
        labels: the ``labels`` mapping (regions as tuples).
        regions_class_order: one value per foreground region (region mode), else ``None``.
        ignore_label: value of the ``ignore`` entry, or ``None``.
        all_labels: every label value (background included, ignore excluded), sorted.
        has_regions: region mode.
        regions: the foreground regions in ``labels`` order (each a tuple of label values), or ``None``.
    """

    labels: Mapping[str, int | Region]
    regions_class_order: tuple[int, ...] | None
    ignore_label: int | None
    all_labels: tuple[int, ...]
    has_regions: bool
    regions: tuple[Region, ...] | None

    @classmethod
    def from_dataset_spec(cls, spec: DatasetSpec, *, force_labels: bool = False) -> LabelSpec:
        """From a ``DatasetSpec``; ``force_labels`` treats a region dataset as plain labels (reference option)."""
        return cls.from_labels(spec.labels, regions_class_order=spec.regions_class_order, force_labels=force_labels)

    @classmethod
    def from_labels(cls, labels: Mapping[str, Any], *, regions_class_order: Sequence[int] | None = None,
                    force_labels: bool = False) -> LabelSpec:
        """From a ``labels`` mapping (``name -> int | list[int]``); raises ``DatasetError`` on invalid semantics."""
        _check_background(labels)
        norm = {str(k): (tuple(int(x) for x in v) if isinstance(v, (list, tuple)) else int(v))
                for k, v in labels.items()}
        ignore = norm.get("ignore")
        if isinstance(ignore, tuple):
            msg = f"The ignore label must be one integer, not a region: {labels['ignore']!r}."
            raise DatasetError(msg)
        values = [x for k, v in norm.items() if k != "ignore" for x in (v if isinstance(v, tuple) else (v,))]
        all_labels = tuple(sorted(set(values)))
        if ignore is not None and ignore != max(all_labels) + 1:
            msg = (f"The ignore label must have the highest value, max(labels) + 1 = {max(all_labels) + 1}; "
                   f"got ignore = {ignore}.")
            raise DatasetError(msg)
        has_regions = not force_labels and any(isinstance(v, tuple) and len(v) > 1 for v in norm.values())
        regions = None
        order = tuple(int(v) for v in regions_class_order) if regions_class_order is not None else None
        if has_regions:
            regions = tuple(v if isinstance(v, tuple) else (v,) for k, v in norm.items()
                            if k != "ignore" and not _is_background(v))
            if order is None:
                msg = "Region labels (lists of values) need regions_class_order in dataset.json."
                raise DatasetError(msg)
            if len(order) != len(regions):
                msg = (f"regions_class_order has {len(order)} entries but there are {len(regions)} foreground "
                       f"regions {list(regions)}.")
                raise DatasetError(msg)
        return cls(labels=norm, regions_class_order=order, ignore_label=ignore,
                   all_labels=all_labels, has_regions=has_regions, regions=regions)

    # ---- derived facts -----------------------------------------------------------------------------------------
    @property
    def has_ignore_label(self) -> bool:
        """Whether an ``ignore`` label is declared."""
        return self.ignore_label is not None

    @property
    def foreground_labels(self) -> tuple[int, ...]:
        """``all_labels`` without 0."""
        return tuple(v for v in self.all_labels if v != 0)

    @property
    def foreground_regions(self) -> tuple[Region, ...]:
        """Regions (region mode) or one single-value region per foreground label (label mode)."""
        if self.regions is not None:
            return self.regions
        return tuple((v,) for v in self.foreground_labels)

    @property
    def num_outputs(self) -> int:
        """Network output channels: number of labels incl. background, or number of foreground regions."""
        return len(self.regions) if self.has_regions and self.regions is not None else len(self.all_labels)

    @property
    def expected_values(self) -> tuple[int, ...]:
        """Values a label file may contain: ``all_labels`` plus the ignore label."""
        return self.all_labels + ((self.ignore_label,) if self.ignore_label is not None else ())

    @property
    def nonlinearity(self) -> str:
        """``"softmax"`` (label mode) or ``"sigmoid"`` (region mode)."""
        return "sigmoid" if self.has_regions else "softmax"

    # ---- conversions -------------------------------------------------------------------------------------------
    def apply_nonlinearity(self, logits: ArrayT) -> ArrayT:
        """Softmax over channels (label mode) or sigmoid (region mode) of ``(c, ...)`` logits, as float32."""
        import torch

        t = torch.as_tensor(logits).float()
        out = torch.sigmoid(t) if self.has_regions else torch.softmax(t, dim=0)
        return out.numpy() if isinstance(logits, np.ndarray) else out

    def to_segmentation(self, outputs: ArrayT, *, logits: bool = False) -> ArrayT:
        """Channel-first network outputs ``(c, ...)`` -> integer label map ``(...)``.

        Label mode: argmax over channels (the same for logits and probabilities). Region mode: each region channel
        above 0.5 (probabilities) or above 0 (``logits=True``) is painted with its ``regions_class_order`` value,
        later regions over earlier ones. numpy in, numpy out (uint8/uint16); torch in, torch out (int16, same device).
        """
        if outputs.shape[0] != self.num_outputs:
            msg = f"Expected {self.num_outputs} output channels, got {outputs.shape[0]} (shape {tuple(outputs.shape)})."
            raise DatasetError(msg)
        if isinstance(outputs, np.ndarray):
            return self._to_segmentation_numpy(outputs, logits=logits)
        return self._to_segmentation_torch(outputs, logits=logits)

    def _to_segmentation_numpy(self, outputs: np.ndarray, *, logits: bool) -> np.ndarray:
        dtype = np.uint8 if max(self.all_labels) < 256 else np.uint16
        if not self.has_regions:
            return outputs.argmax(0).astype(dtype)
        seg = np.zeros(outputs.shape[1:], dtype=dtype)
        threshold = 0.0 if logits else 0.5
        for channel, value in zip(outputs, self.regions_class_order or ()):
            seg[channel > threshold] = value
        return seg

    def _to_segmentation_torch(self, outputs: torch.Tensor, *, logits: bool) -> torch.Tensor:
        import torch

        if not self.has_regions:
            return outputs.argmax(0).to(torch.int16)
        seg = torch.zeros(outputs.shape[1:], dtype=torch.int16, device=outputs.device)
        threshold = 0.0 if logits else 0.5
        for channel, value in zip(outputs, self.regions_class_order or ()):
            seg[channel > threshold] = value
        return seg

    def to_dict(self) -> dict[str, Any]:
        """The ``labels`` mapping in dataset.json form (regions as lists) plus ``regions_class_order``."""
        out: dict[str, Any] = {"labels": {k: list(v) if isinstance(v, tuple) else v for k, v in self.labels.items()}}
        if self.regions_class_order is not None:
            out["regions_class_order"] = list(self.regions_class_order)
        return out

"""LabelSpec: the reference's label-manager semantics (labels, regions, ignore) and outputs -> segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autounet.errors import DatasetError
from autounet.labels import LabelSpec
from autounet.schemas.dataset import DatasetSpec


def test_plain_labels() -> None:
    spec = LabelSpec.from_labels({"background": 0, "liver": 1, "tumor": 2})
    assert spec.all_labels == (0, 1, 2)
    assert spec.foreground_labels == (1, 2)
    assert not spec.has_regions and spec.regions is None
    assert spec.num_outputs == 3 and spec.nonlinearity == "softmax"
    assert spec.ignore_label is None and spec.expected_values == (0, 1, 2)
    assert spec.foreground_regions == ((1,), (2,))


def test_regions_follow_labels_order_and_skip_background() -> None:
    spec = LabelSpec.from_labels({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3},
                                 regions_class_order=[1, 2, 3])
    assert spec.has_regions and spec.nonlinearity == "sigmoid"
    assert spec.regions == ((1, 2, 3), (2, 3), (3,))
    assert spec.num_outputs == 3
    assert spec.all_labels == (0, 1, 2, 3)


def test_single_element_lists_are_plain_labels() -> None:
    spec = LabelSpec.from_labels({"background": 0, "a": [1], "b": 2})
    assert not spec.has_regions and spec.num_outputs == 3


def test_ignore_label_must_be_highest() -> None:
    spec = LabelSpec.from_labels({"background": 0, "a": 1, "ignore": 2})
    assert spec.ignore_label == 2 and spec.all_labels == (0, 1) and spec.num_outputs == 2
    assert spec.expected_values == (0, 1, 2)
    with pytest.raises(DatasetError, match="ignore label must have the highest value.*got ignore = 5"):
        LabelSpec.from_labels({"background": 0, "a": 1, "ignore": 5})
    with pytest.raises(DatasetError, match="not a region"):
        LabelSpec.from_labels({"background": 0, "a": 1, "ignore": [2, 3]})


@pytest.mark.parametrize("labels", [{"a": 1}, {"background": 1, "a": 2}, {"background": [0, 1], "a": 2}])
def test_background_must_be_zero(labels: dict) -> None:
    with pytest.raises(DatasetError, match="background"):
        LabelSpec.from_labels(labels)


def test_regions_need_a_matching_class_order() -> None:
    labels = {"background": 0, "whole": [1, 2], "core": 2}
    with pytest.raises(DatasetError, match="need regions_class_order"):
        LabelSpec.from_labels(labels)
    with pytest.raises(DatasetError, match="1 entries but there are 2"):
        LabelSpec.from_labels(labels, regions_class_order=[1])


def test_from_dataset_spec() -> None:
    ds = DatasetSpec(channel_names={"0": "CT"}, labels={"background": 0, "w": (1, 2), "c": 2}, num_training=1,
                     file_ending=".nii.gz", regions_class_order=(1, 2))
    spec = LabelSpec.from_dataset_spec(ds)
    assert spec.has_regions and spec.regions_class_order == (1, 2)
    assert not LabelSpec.from_dataset_spec(ds, force_labels=True).has_regions


def test_argmax_segmentation_numpy_and_torch() -> None:
    spec = LabelSpec.from_labels({"background": 0, "a": 1, "b": 2})
    probs = np.array([[0.7, 0.1, 0.2], [0.2, 0.8, 0.3], [0.1, 0.1, 0.5]])  # (c=3, n=3)
    seg = spec.to_segmentation(probs)
    np.testing.assert_array_equal(seg, [0, 1, 2])
    assert isinstance(seg, np.ndarray)
    tseg = spec.to_segmentation(torch.from_numpy(probs))
    assert isinstance(tseg, torch.Tensor)
    assert tseg.tolist() == [0, 1, 2]


def test_region_thresholding_paints_in_class_order() -> None:
    spec = LabelSpec.from_labels({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enh": 3},
                                 regions_class_order=[1, 2, 3])
    probs = np.array([[0.9, 0.9, 0.9, 0.2], [0.1, 0.8, 0.9, 0.9], [0.0, 0.2, 0.7, 0.9]])
    # voxel 0: whole only -> 1; voxel 1: whole+core -> 2; voxel 2: all -> 3; voxel 3: core+enh but not whole -> 3
    np.testing.assert_array_equal(spec.to_segmentation(probs), [1, 2, 3, 3])
    logits = torch.logit(torch.from_numpy(probs).clamp(1e-4, 1 - 1e-4))
    assert spec.to_segmentation(logits, logits=True).tolist() == [1, 2, 3, 3]


def test_wrong_channel_count_is_an_error() -> None:
    spec = LabelSpec.from_labels({"background": 0, "a": 1})
    with pytest.raises(DatasetError, match="Expected 2 output channels, got 3"):
        spec.to_segmentation(np.zeros((3, 4)))


def test_nonlinearity() -> None:
    spec = LabelSpec.from_labels({"background": 0, "a": 1})
    p = spec.apply_nonlinearity(np.array([[0.0, 1.0], [0.0, -1.0]]))
    np.testing.assert_allclose(p.sum(0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0, 0], 0.5)
    r = LabelSpec.from_labels({"background": 0, "w": [1, 2], "c": 2}, regions_class_order=[1, 2])
    np.testing.assert_allclose(r.apply_nonlinearity(torch.zeros(2, 3)).numpy(), 0.5)

"""The training augmentation pipeline on whole batches, in the reference's order (facts §5.4, §5.5).

:func:`build` returns an :class:`Augmenter`. The training loop draws parameters for a batch from its own seeded
``torch.Generator`` and applies them on the device that holds the batch::

    aug = build(config, patch_size=(40, 56, 40), deep_supervision_strides=plan.network.strides)
    loader_patch_size = aug.initial_patch_size          # what the patch sampler crops
    batch = aug(image, seg, generator=g)                 # image (B, C, *initial), seg (B, S, *initial) int
    batch.image, batch.target                            # (B, C', *patch), list of targets per DS scale

``aug.make_params(batch_size, channels=C, generator=g)`` and ``aug.apply(image, seg, params)`` split the same
call into random draws and a deterministic application, so parameters can be recorded and replayed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
import torch

from autounet.augmentation import cascade, intensity, lowres, mirror, spatial, targets
from autounet.augmentation.config import AugmentationConfig, SpatialConfig, load
from autounet.errors import ConfigError

ANISO_THRESHOLD = 3.0
REFERENCE_SCALE_DIVISOR = 0.85


# ---- configuration rules (§5.5) ----------------------------------------------------------------------------------

def use_dummy_2d(patch_size: Sequence[int], config: SpatialConfig | None = None) -> bool:
    """Dummy-2D augmentation for 3D patches whose first axis is much shorter (``max / patch[0] > 3``)."""
    if config is not None and config.dummy_2d is not None:
        return bool(config.dummy_2d) and len(patch_size) == 3
    return len(patch_size) == 3 and max(patch_size) / patch_size[0] > ANISO_THRESHOLD


def rotation_range_deg(patch_size: Sequence[int], *, dummy_2d: bool,
                       config: SpatialConfig | None = None) -> tuple[float, float]:
    """Rotation range in degrees: the config's, or 2D ±180° (±15° if ``max/min > 1.5``), 3D ±30°, dummy-2D ±180°."""
    if config is not None and config.rotation_deg is not None:
        return (float(config.rotation_deg[0]), float(config.rotation_deg[1]))
    if len(patch_size) == 2:
        return (-15.0, 15.0) if max(patch_size) / min(patch_size) > 1.5 else (-180.0, 180.0)
    return (-180.0, 180.0) if dummy_2d else (-30.0, 30.0)


def mirror_axes(ndim: int, config: AugmentationConfig | None = None) -> tuple[int, ...]:
    """Axes that may be mirrored (and used for test-time mirroring): all spatial axes unless configured."""
    axes = None if config is None else config.mirror.axes
    if axes is None:
        return tuple(range(ndim))
    bad = [a for a in axes if a >= ndim]
    if bad:
        msg = f"augmentation mirror.axes {axes} name axes beyond a {ndim}D patch."
        raise ConfigError(msg)
    return tuple(axes)


def _rot2(a: float) -> np.ndarray:
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _rot3(a: float, axis: int) -> np.ndarray:
    m = np.eye(3)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[i, i] = m[j, j] = math.cos(a)
    m[i, j], m[j, i] = -math.sin(a), math.sin(a)
    return m


def initial_patch_size(patch_size: Sequence[int], *, config: AugmentationConfig | None = None,
                       rotation_deg: tuple[float, float] | None = None, dummy_2d: bool | None = None
                       ) -> tuple[int, ...]:
    """The enlarged patch the loader crops so that rotation and scaling find image content.

    ``reference`` mode (§5.5): the final patch as a vector, rotated about each single axis by
    ``min(max|rotation|, 90°)``, component-wise maximum with itself, divided by 0.85 and truncated; the first
    axis kept in dummy-2D mode. ``covering`` mode: the bounding box of every rotated and scaled final patch in
    the configured ranges, so resampling never leaves the loaded patch. Without rotation and scaling the final
    patch is returned.
    """
    config = config or AugmentationConfig()
    patch = tuple(int(p) for p in patch_size)
    sp = config.spatial
    if not sp.active:
        return patch
    dummy = use_dummy_2d(patch, sp) if dummy_2d is None else dummy_2d
    rot = rotation_range_deg(patch, dummy_2d=dummy, config=sp) if rotation_deg is None else rotation_deg
    if sp.p_rotation == 0:
        rot = (0.0, 0.0)
    if sp.initial_patch == "covering":
        return _covering_patch(patch, rot, sp, dummy)
    r = min(math.radians(max(abs(rot[0]), abs(rot[1]))), math.pi / 2)
    v = np.asarray(patch, dtype=np.float64)
    shape = v.copy()
    rotations = [_rot2(r)] if len(v) == 2 else [_rot3(r, 0), _rot3(r, 1), _rot3(r, 2)]
    for m in rotations:
        shape = np.maximum(shape, np.abs(v @ m))
    out = (shape / REFERENCE_SCALE_DIVISOR).astype(int)
    if dummy:
        out[0] = patch[0]
    return tuple(int(x) for x in out)


def _covering_patch(patch: tuple[int, ...], rot_deg: tuple[float, float], sp: SpatialConfig,
                    dummy: bool) -> tuple[int, ...]:
    """Bounding box (plus a voxel of margin) of the final patch under every rotation/scale in range."""
    plane = patch[1:] if dummy else patch
    half = (np.asarray(plane, dtype=np.float64) - 1) / 2
    lo, hi = np.radians(rot_deg)
    angles = np.unique(np.concatenate([np.linspace(lo, hi, 33), np.arange(-8, 9) * np.pi / 4]))
    angles = angles[(angles >= lo) & (angles <= hi)]
    smax = max(sp.scaling[1], 1.0) if sp.p_scaling > 0 else 1.0
    if len(plane) == 2:
        mats = [_rot2(a) for a in angles]
    else:
        mats = [_rot3(c, 2) @ _rot3(b, 1) @ _rot3(a, 0) for a in angles for b in angles for c in angles]
    reach = np.max([np.abs(m) @ (half * smax) for m in mats], axis=0)
    size = np.maximum(np.ceil(2 * reach).astype(int) + 2, np.asarray(plane))
    return (patch[0], *map(int, size)) if dummy else tuple(int(x) for x in size)


# ---- records -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentationParams:
    """Every random decision for one batch (small CPU tensors), in the order of application."""

    spatial: spatial.SpatialParams
    noise: intensity.NoiseParams
    blur: intensity.BlurParams
    brightness: intensity.FactorParams
    contrast: intensity.FactorParams
    lowres: lowres.LowResParams
    gamma_inverted: intensity.FactorParams
    gamma: intensity.FactorParams
    mirror: mirror.MirrorParams
    binary_operator: cascade.BinaryOperatorParams | None = None
    remove_component: cascade.RemoveComponentParams | None = None

    def applied(self) -> dict[str, torch.Tensor]:
        """``(B,)`` bool per transform: whether it acted on each sample (for statistics and logs)."""
        out = {"rotation": self.spatial.rotate, "scaling": self.spatial.scale,
               "mirror": self.mirror.flip.any(dim=1)}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("spatial", "mirror") and value is not None:
                out[f.name] = value.apply
        return out


    def take(self, index: torch.Tensor) -> AugmentationParams:
        """The parameters of the samples ``index`` (a CPU long tensor), in that order."""
        return _take(self, index)


_T = TypeVar("_T")


def _take(record: _T, index: torch.Tensor) -> _T:
    """Select samples of a params record: every tensor field is indexed along its first (batch) axis."""
    changes: dict[str, Any] = {}
    for f in fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if isinstance(value, torch.Tensor):
            changes[f.name] = value[index]
        elif dataclasses.is_dataclass(value):
            changes[f.name] = _take(value, index)
    return dataclasses.replace(record, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class AugmentedBatch:
    """Network input ``image (B, C', *patch)`` and ``target``: a tensor, or one per deep-supervision scale."""

    image: torch.Tensor
    target: torch.Tensor | list[torch.Tensor]


# ---- the pipeline ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Augmenter:
    """A built pipeline for one configuration (see :func:`build`). Callable on batches on any device."""

    config: AugmentationConfig
    patch_size: tuple[int, ...]
    initial_patch_size: tuple[int, ...]
    dummy_2d: bool
    rotation_deg: tuple[float, float]
    mirror_axes: tuple[int, ...]
    deep_supervision_scales: tuple[tuple[float, ...], ...] | None = None
    mask_channels: tuple[int, ...] = ()
    cascade_labels: tuple[int, ...] = ()
    regions: tuple[tuple[int, ...], ...] | None = None
    ignore_label: int | None = None
    _rotation_rad: tuple[float, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rotation_rad", (math.radians(self.rotation_deg[0]),
                                                   math.radians(self.rotation_deg[1])))

    @property
    def ndim(self) -> int:
        """Spatial dimensionality of the patches (2 or 3)."""
        return len(self.patch_size)

    def make_params(self, batch_size: int, *, channels: int, generator: torch.Generator) -> AugmentationParams:
        """Draw every random decision for a batch of ``batch_size`` samples with ``channels`` image channels."""
        cfg, g, b, c, nd = self.config, generator, batch_size, channels, self.ndim
        n_fg = len(self.cascade_labels)
        return AugmentationParams(
            spatial=spatial.make_params(cfg.spatial, b, ndim=2 if self.dummy_2d else nd,
                                        rotation_rad=self._rotation_rad, generator=g),
            noise=intensity.make_noise_params(cfg.noise, b, g),
            blur=intensity.make_blur_params(cfg.blur, b, c, nd, g),
            brightness=intensity.make_brightness_params(cfg.brightness, b, c, g),
            contrast=intensity.make_contrast_params(cfg.contrast, b, c, g),
            lowres=lowres.make_params(cfg.lowres, b, c, nd, g, ignore_axes=(0,) if self.dummy_2d else ()),
            gamma_inverted=intensity.make_gamma_params(cfg.gamma_inverted, b, c, g),
            gamma=intensity.make_gamma_params(cfg.gamma, b, c, g),
            mirror=mirror.make_params(cfg.mirror, b, ndim=nd, axes=self.mirror_axes, generator=g),
            binary_operator=cascade.make_binary_operator_params(cfg.cascade, b, n_fg, g) if n_fg else None,
            remove_component=cascade.make_remove_component_params(cfg.cascade, b, n_fg, g) if n_fg else None,
        )

    def __call__(self, image: torch.Tensor, seg: torch.Tensor, *, generator: torch.Generator,
                 threads: int = 1) -> AugmentedBatch:
        """Augment a training batch and build its targets: draw parameters from ``generator``, then apply them.

        ``threads``: see :meth:`apply` (CPU batches only).
        """
        params = self.make_params(image.shape[0], channels=image.shape[1], generator=generator)
        return self.apply(image, seg, params, threads=threads)

    def apply(self, image: torch.Tensor, seg: torch.Tensor, params: AugmentationParams, *,
              threads: int = 1) -> AugmentedBatch:
        """Apply recorded parameters: :meth:`apply_augmentation`, then :meth:`apply_targets`.

        ``threads > 1`` splits a CPU batch into that many parts augmented concurrently (torch releases the GIL);
        the result is identical to ``threads=1``. Use it with ``torch.set_num_threads(1)`` instead of torch's
        intra-op threads, which busy-wait and collapse when the cores are shared. Ignored off the CPU.
        """
        b = image.shape[0]
        if threads <= 1 or image.device.type != "cpu" or b < 2:
            image, seg = self.apply_augmentation(image, seg, params)
            return self.apply_targets(image, seg, params)
        self._check(image, seg, params.mirror.flip.shape[0])
        noise = intensity.noise_field(params.noise, (b, image.shape[1], *self.patch_size), device=image.device)
        rank = torch.cumsum(params.noise.apply.long(), 0) - 1  # row of each noisy sample in the noise field
        parts = [p for p in torch.arange(b).tensor_split(min(threads, b)) if len(p)]

        def run(part: torch.Tensor) -> AugmentedBatch:
            sub = params.take(part)
            field = noise[rank[part][sub.noise.apply]]
            img, s = self.apply_augmentation(image[part], seg[part], sub, noise=field)
            return self.apply_targets(img, s, sub)

        with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="autounet-augment") as pool:
            outs = list(pool.map(run, parts))
        targets_out: torch.Tensor | list[torch.Tensor]
        if isinstance(outs[0].target, list):
            targets_out = [torch.cat([o.target[k] for o in outs]) for k in range(len(outs[0].target))]
        else:
            targets_out = torch.cat([o.target for o in outs])  # type: ignore[misc]
        return AugmentedBatch(torch.cat([o.image for o in outs]), targets_out)

    def augment(self, image: torch.Tensor, seg: torch.Tensor, *,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1-12 only (spatial, intensity, mirroring, masking): ``(image, seg)`` at the final patch size.

        ``seg`` keeps the label -1 outside the mask; pass both to :meth:`prepare` for the targets.
        """
        params = self.make_params(image.shape[0], channels=image.shape[1], generator=generator)
        return self.apply_augmentation(image, seg, params)

    def prepare(self, image: torch.Tensor, seg: torch.Tensor, *, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
        """Steps 13-16 (label -1 to 0, cascade one-hot, regions, deep supervision): ``(inputs, targets)``.

        With a ``generator`` (training) the cascade's one-hot channels are perturbed; without (validation) not.
        """
        params = None
        if generator is not None and self.cascade_labels:
            params = self.make_params(image.shape[0], channels=image.shape[1], generator=generator)
        out = self.apply_targets(image, seg, params)
        return out.image, out.target

    def apply_augmentation(self, image: torch.Tensor, seg: torch.Tensor, params: AugmentationParams, *,
                           noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Spatial, intensity and mirroring transforms, then masking (steps 1-12) with recorded parameters.

        ``noise``: a precomputed noise field (see :func:`intensity.noise_field`), else drawn from the params.
        """
        self._check(image, seg, params.mirror.flip.shape[0])
        cfg = self.config
        image, seg = self._spatial(image, seg, params.spatial)
        image = intensity.apply_noise(image, params.noise, field=noise)
        image = intensity.apply_blur(image, params.blur)
        image = intensity.apply_brightness(image, params.brightness)
        image = intensity.apply_contrast(image, params.contrast, preserve_range=cfg.contrast.preserve_range)
        image = lowres.apply(image, params.lowres)
        image = intensity.apply_gamma(image, params.gamma_inverted, invert=cfg.gamma_inverted.invert)
        image = intensity.apply_gamma(image, params.gamma, invert=cfg.gamma.invert)
        image, seg = mirror.apply(image, params.mirror), mirror.apply(seg, params.mirror)
        image = targets.mask_image(image, seg, self.mask_channels)
        return image, seg

    def apply_targets(self, image: torch.Tensor, seg: torch.Tensor,
                      params: AugmentationParams | None) -> AugmentedBatch:
        """Label -1 to background, cascade channels (perturbed with ``params``), regions, deep supervision."""
        seg = targets.remove_label(seg)
        if self.cascade_labels:
            n_img = image.shape[1]
            image, seg = cascade.move_seg_to_onehot(image, seg, self.cascade_labels)
            if params is not None and params.binary_operator is not None and params.remove_component is not None:
                image = cascade.apply_binary_operator(image, params.binary_operator, first_channel=n_img)
                image = cascade.apply_remove_component(
                    image, params.remove_component, first_channel=n_img,
                    max_fraction=self.config.cascade.max_component_fraction)
        target: torch.Tensor = seg
        if self.regions is not None:
            target = targets.to_regions(seg, self.regions, ignore_label=self.ignore_label)
        if self.deep_supervision_scales is not None:
            return AugmentedBatch(image, targets.deep_supervision_targets(target, self.deep_supervision_scales))
        return AugmentedBatch(image, target)

    def validation(self, image: torch.Tensor, seg: torch.Tensor) -> AugmentedBatch:
        """The validation pipeline on final-size patches: the target steps only, no augmentation."""
        self._check(image, seg, image.shape[0], expected=self.patch_size)
        return self.apply_targets(image, seg, None)

    # -- steps ----------------------------------------------------------------------------------------------------

    def _spatial(self, image: torch.Tensor, seg: torch.Tensor,
                 params: spatial.SpatialParams) -> tuple[torch.Tensor, torch.Tensor]:
        mode = self.config.spatial.segmentation_mode
        if not self.dummy_2d:
            out = spatial.apply(image, seg, params, patch_size=self.patch_size, segmentation_mode=mode)
            return out[0], out[1]  # type: ignore[return-value]
        depth = self.patch_size[0]
        image = _crop_axis0(image, depth, 0.0)
        seg = _crop_axis0(seg, depth, spatial.PAD_LABEL)
        b, c, s = image.shape[0], image.shape[1], seg.shape[1]
        img2, seg2 = spatial.apply(image.flatten(1, 2), seg.flatten(1, 2), params, patch_size=self.patch_size[1:],
                                   segmentation_mode=mode)
        assert seg2 is not None  # spatial.apply returns a segmentation when given one
        return (img2.view(b, c, depth, *self.patch_size[1:]), seg2.view(b, s, depth, *self.patch_size[1:]))

    def _check(self, image: torch.Tensor, seg: torch.Tensor, batch_size: int,
               expected: Sequence[int] | None = None) -> None:
        nd = self.ndim
        problems = []
        if image.ndim != nd + 2 or seg.ndim != nd + 2:
            problems.append(f"image {tuple(image.shape)} and seg {tuple(seg.shape)} must both be (B, C, *{nd}D)")
        elif image.shape[0] != seg.shape[0] or image.shape[2:] != seg.shape[2:]:
            problems.append(f"image {tuple(image.shape)} and seg {tuple(seg.shape)} differ in batch or space")
        elif image.shape[0] != batch_size:
            problems.append(f"parameters are for {batch_size} samples, the batch has {image.shape[0]}")
        elif expected is not None and tuple(image.shape[2:]) != tuple(expected):
            problems.append(f"validation patches must have the final patch size {tuple(expected)},"
                            f" got {tuple(image.shape[2:])}")
        if seg.is_floating_point():
            problems.append(f"seg must hold integer labels, got {seg.dtype}")
        if self.cascade_labels and seg.ndim == nd + 2 and seg.shape[1] < 2:
            problems.append("a cascade needs the previous stage's segmentation as segmentation channel 1")
        if problems:
            raise ValueError("augmentation input: " + "; ".join(problems))


def _crop_axis0(x: torch.Tensor, depth: int, pad_value: float) -> torch.Tensor:
    """Centre-crop (or pad) spatial axis 0 of ``x (B, C, D, ...)`` to ``depth``, other axes unchanged."""
    if x.shape[2] == depth:
        return x
    return spatial.centre_crop(x, (depth, *x.shape[3:]), pad_value=pad_value)


def build(config: AugmentationConfig | str = "default", *, patch_size: Sequence[int],
          deep_supervision_strides: Sequence[Sequence[int]] | None = None,
          use_mask_for_norm: Sequence[bool] | None = None,
          cascade_labels: Sequence[int] | None = None,
          regions: Sequence[Sequence[int] | int] | None = None,
          ignore_label: int | None = None) -> Augmenter:
    """Build the training/validation pipeline for one configuration.

    Args:
        config: an :class:`AugmentationConfig`, a preset name or a JSON file path.
        patch_size: the final (network) patch size, 2 or 3 entries.
        deep_supervision_strides: the network's per-stage strides (first all ones); targets are then returned
            per scale ``1 / cumprod(strides)`` without the bottleneck. ``None``: a single target.
        use_mask_for_norm: per image channel; those channels are zeroed outside the non-zero mask (label -1).
        cascade_labels: foreground labels of the previous stage (cascade configurations only).
        regions: foreground regions as label sets; targets become boolean region masks.
        ignore_label: with regions, an extra last target channel marks these voxels.
    """
    cfg = load(config)
    patch = tuple(int(p) for p in patch_size)
    if len(patch) not in (2, 3) or min(patch) < 1:
        msg = f"patch_size must have 2 or 3 positive entries, got {tuple(patch_size)}."
        raise ConfigError(msg)
    dummy = use_dummy_2d(patch, cfg.spatial)
    rot = rotation_range_deg(patch, dummy_2d=dummy, config=cfg.spatial)
    scales = None if deep_supervision_strides is None else targets.deep_supervision_scales(deep_supervision_strides)
    if scales is not None and any(len(s) != len(patch) for s in scales):
        msg = f"deep-supervision strides {deep_supervision_strides} do not match the {len(patch)}D patch {patch}."
        raise ConfigError(msg)
    return Augmenter(
        config=cfg, patch_size=patch, initial_patch_size=initial_patch_size(patch, config=cfg, dummy_2d=dummy),
        dummy_2d=dummy, rotation_deg=rot, mirror_axes=mirror_axes(len(patch), cfg),
        deep_supervision_scales=scales,
        mask_channels=tuple(i for i, m in enumerate(use_mask_for_norm or ()) if m),
        cascade_labels=tuple(int(x) for x in (cascade_labels or ())),
        regions=None if regions is None else tuple((r,) if isinstance(r, int) else tuple(r) for r in regions),
        ignore_label=ignore_label,
    )

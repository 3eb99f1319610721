"""Conversion between our plans and the reference's plans JSON (nnU-Net v2), both ways.

Everything that determines preprocessing, training and inference converts losslessly: spacing, patch and batch
size, median shape, normalization (+ use-mask), resampling settings, network topology, batch Dice, cascade links,
inheritance (``inherits_from``) and partial (inheriting) configurations. Components are mapped between the
reference's class/function names and our registry names; values the rebuild cannot represent (a custom network
class, dropout, a custom preprocessor, unknown keys) raise :class:`~autounet.errors.PlansError` instead of being
dropped. Legacy reference plans (``UNet_class_name`` ... instead of ``architecture``) are converted like the
reference converts them on load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autounet.errors import PlansError
from autounet.planning.presets import PRESETS, preset_for_reference_class
from autounet.schemas._base import make_provenance, sha256_of
from autounet.schemas.plans import Plans, entries

NORMALIZATION_CLASSES = {
    "CTNormalization": "ct", "NoNormalization": "none", "ZScoreNormalization": "zscore",
    "RescaleTo01Normalization": "rescale_to_0_1", "RGBTo01Normalization": "rgb_to_0_1",
}
RESAMPLING_FUNCTIONS = {"resample_data_or_seg_to_shape": "default"}
PREPROCESSORS = {"DefaultPreprocessor": "default"}
READERS = {"SimpleITKIO": "simpleitk", "SimpleITKIOWithReorient": "simpleitk_reorient", "NibabelIO": "nibabel",
           "NibabelIOWithReorient": "nibabel_reorient", "NaturalImage2DIO": "natural2d", "Tiff3DIO": "tiff3d"}
NETWORK_CLASSES = {
    "dynamic_network_architectures.architectures.unet.PlainConvUNet": "plain_unet",
    "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet": "resenc_unet",
    "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet": "resenc_unet",
    "PlainConvUNet": "plain_unet",
    "ResidualEncoderUNet": "resenc_unet",
}
EXPORT_NETWORK_CLASSES = {
    "plain_unet": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "resenc_unet": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
}
BLOCKS_KEY = {"plain_unet": "n_conv_per_stage", "resenc_unet": "n_blocks_per_stage"}
NORM_OPS = {"InstanceNorm": "instance", "BatchNorm": "batch"}
EXPORT_NORM_OPS = {"instance": "torch.nn.modules.instancenorm.InstanceNorm{d}d",
                   "batch": "torch.nn.modules.batchnorm.BatchNorm{d}d"}
NONLINS = {"torch.nn.LeakyReLU": "leaky_relu", "torch.nn.modules.activation.LeakyReLU": "leaky_relu",
           "torch.nn.ReLU": "relu", "torch.nn.modules.activation.ReLU": "relu"}
EXPORT_NONLINS = {"leaky_relu": "torch.nn.LeakyReLU", "relu": "torch.nn.ReLU"}
STANDARD_NORM_KWARGS = {"eps": 1e-5, "affine": True}
STANDARD_NONLIN_KWARGS = {"inplace": True}
KW_REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
ARCH_KEYS = ("n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides", "n_conv_per_stage",
             "n_blocks_per_stage", "n_conv_per_stage_decoder", "conv_bias", "norm_op", "norm_op_kwargs",
             "dropout_op", "dropout_op_kwargs", "nonlin", "nonlin_kwargs")
LEGACY_KEYS = ("UNet_class_name", "UNet_base_num_features", "n_conv_per_stage_encoder", "n_conv_per_stage_decoder",
               "num_pool_per_axis", "pool_op_kernel_sizes", "conv_kernel_sizes", "unet_max_num_features")
TOP_LEVEL_KEYS = ("dataset_name", "plans_name", "original_median_spacing_after_transp",
                  "original_median_shape_after_transp", "image_reader_writer", "transpose_forward",
                  "transpose_backward", "configurations", "experiment_planner_used", "label_manager",
                  "foreground_intensity_properties_per_channel")
# reference key(s) <-> our key; a group converts together (a partial configuration takes the missing member
# from its resolved parent).
SIMPLE_KEYS = ("data_identifier", "batch_size", "patch_size", "median_image_size_in_voxels", "spacing",
               "batch_dice", "previous_stage", "inherits_from")
RESAMPLING_KEYS = {"resampling_data": "resampling_fn_data", "resampling_seg": "resampling_fn_seg",
                   "resampling_probabilities": "resampling_fn_probabilities"}


# ---- import ---------------------------------------------------------------------------------------------------
def import_plans(data: Mapping[str, Any], *, where: str = "reference plans") -> Plans:
    """Convert a reference plans dict (as loaded from ``nnUNetPlans.json``) into :class:`Plans`.

    Raises:
        PlansError: missing/unknown keys or a component the rebuild does not implement (named in the message).
    """
    if not isinstance(data, Mapping):
        msg = f"{where}: expected a JSON object."
        raise PlansError(msg)
    _check_keys(data, TOP_LEVEL_KEYS, optional=("experiment_planner_used", "label_manager"), where=where)
    if data.get("label_manager", "LabelManager") != "LabelManager":
        msg = f"{where}: label manager {data['label_manager']!r} is not supported (only LabelManager)."
        raise PlansError(msg)
    raw = {str(k): dict(v) for k, v in data["configurations"].items()}
    configurations = {name: _import_configuration(name, raw, where=where) for name in raw}
    planner_class = str(data.get("experiment_planner_used", "ExperimentPlanner"))
    preset = preset_for_reference_class(planner_class)
    plans = Plans(
        dataset_name=str(data["dataset_name"]), plans_name=str(data["plans_name"]),
        planner=preset.name if preset else planner_class,
        original_median_spacing_after_transp=tuple(float(v) for v in data["original_median_spacing_after_transp"]),
        original_median_shape_after_transp=tuple(int(v) for v in data["original_median_shape_after_transp"]),
        image_reader_writer=READERS.get(str(data["image_reader_writer"]), str(data["image_reader_writer"])),
        transpose_forward=tuple(int(v) for v in data["transpose_forward"]),
        transpose_backward=tuple(int(v) for v in data["transpose_backward"]),
        foreground_intensity_properties_per_channel={
            str(k): {kk: float(vv) for kk, vv in v.items()}
            for k, v in data["foreground_intensity_properties_per_channel"].items()},
        configurations=entries(configurations),
        provenance=make_provenance("autounet.planning.reference:import", upstream_sha256=sha256_of(data)),
    )
    for name in plans.configurations:  # resolves inheritance and validates every configuration
        plans.configuration(name)
    return plans


def _import_configuration(name: str, raw: dict[str, dict[str, Any]], *, where: str) -> dict[str, Any]:
    where = f"{where}, configuration {name!r}"
    own = _maybe_legacy(raw[name], where=where)
    allowed = (*SIMPLE_KEYS, "preprocessor_name", "normalization_schemes", "use_mask_for_norm", "architecture",
               "next_stage", *(k for v in RESAMPLING_KEYS.values() for k in (v, f"{v}_kwargs")))
    _check_keys(own, (), optional=allowed, where=where)
    resolved: dict[str, Any] | None = None

    def full() -> dict[str, Any]:
        nonlocal resolved
        if resolved is None:
            resolved = _resolve_reference(raw, name, where=where)
        return resolved

    out: dict[str, Any] = {k: own[k] for k in SIMPLE_KEYS if k in own}
    if "preprocessor_name" in own:
        out["preprocessor"] = _lookup(PREPROCESSORS, own["preprocessor_name"], "preprocessor", where)
    if "normalization_schemes" in own or "use_mask_for_norm" in own:
        out["normalization"] = _import_normalization(full(), where=where)
    for ours, theirs in RESAMPLING_KEYS.items():
        if theirs in own or f"{theirs}_kwargs" in own:
            ref = full()
            out[ours] = {"name": _lookup(RESAMPLING_FUNCTIONS, ref.get(theirs), "resampling function", where),
                         "params": dict(ref.get(f"{theirs}_kwargs") or {})}
    if "architecture" in own:
        out["network"] = import_architecture(own["architecture"], where=where)
    if "next_stage" in own:
        nxt = own["next_stage"]
        out["next_stage"] = [nxt] if isinstance(nxt, str) else list(nxt)
    return out


def _import_normalization(cfg: dict[str, Any], *, where: str) -> list[dict[str, Any]]:
    schemes, masks = cfg.get("normalization_schemes"), cfg.get("use_mask_for_norm")
    if not isinstance(schemes, list) or not isinstance(masks, list) or len(schemes) != len(masks):
        msg = f"{where}: normalization_schemes and use_mask_for_norm must be lists of equal length."
        raise PlansError(msg)
    return [{"name": _lookup(NORMALIZATION_CLASSES, s, "normalization scheme", where),
             "params": {"use_mask_for_norm": bool(m)}} for s, m in zip(schemes, masks, strict=True)]


def import_architecture(arch: Any, *, where: str) -> dict[str, Any]:
    """Reference ``architecture`` dict -> our ``network`` dict (``NetworkSpec.to_dict`` form)."""
    if not isinstance(arch, Mapping) or "network_class_name" not in arch or "arch_kwargs" not in arch:
        msg = f"{where}: architecture must have network_class_name and arch_kwargs."
        raise PlansError(msg)
    network = _lookup(NETWORK_CLASSES, arch["network_class_name"], "network class", where)
    kw = dict(arch["arch_kwargs"])
    blocks_key = BLOCKS_KEY[network]
    required = ("n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides", blocks_key,
                "n_conv_per_stage_decoder")
    _check_keys(kw, required, optional=tuple(k for k in ARCH_KEYS if k not in required),
                where=f"{where}, arch_kwargs")
    n = int(kw["n_stages"])
    dim = 3 if str(kw.get("conv_op", "")).endswith("3d") else 2 if str(kw.get("conv_op", "")).endswith("2d") else 0
    if dim == 0:
        msg = f"{where}: conv_op {kw.get('conv_op')!r} is not Conv2d or Conv3d."
        raise PlansError(msg)
    _expect(kw.get("dropout_op"), None, "dropout_op", where)
    _expect(dict(kw.get("norm_op_kwargs") or {}), STANDARD_NORM_KWARGS, "norm_op_kwargs", where)
    _expect(dict(kw.get("nonlin_kwargs") or {}), STANDARD_NONLIN_KWARGS, "nonlin_kwargs", where)
    norm_class = str(kw.get("norm_op", "")).rsplit(".", 1)[-1]
    norm = next((v for k, v in NORM_OPS.items() if norm_class == f"{k}{dim}d"), None)
    if norm is None:
        msg = f"{where}: norm_op {kw.get('norm_op')!r} is not supported (InstanceNorm or BatchNorm, {dim}D)."
        raise PlansError(msg)
    return {
        "name": network,
        "features_per_stage": _per_stage(kw["features_per_stage"], n),
        "kernel_sizes": [_per_axis(k, dim) for k in _per_stage(kw["kernel_sizes"], n)],
        "strides": [_per_axis(s, dim) for s in _per_stage(kw["strides"], n)],
        "blocks_per_stage": _per_stage(kw[blocks_key], n),
        "convs_per_stage_decoder": _per_stage(kw["n_conv_per_stage_decoder"], n - 1),
        "conv_bias": bool(kw.get("conv_bias", False)),
        "norm": norm,
        "nonlin": _lookup(NONLINS, kw.get("nonlin"), "nonlinearity", where),
    }


def _maybe_legacy(cfg: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Convert a legacy configuration (no ``architecture``) as the reference does on load."""
    if "architecture" in cfg or "UNet_class_name" not in cfg:
        return cfg
    cls = cfg["UNet_class_name"]
    if cls not in ("PlainConvUNet", "ResidualEncoderUNet"):
        msg = f"{where}: legacy network {cls!r} cannot be converted (only PlainConvUNet, ResidualEncoderUNet)."
        raise PlansError(msg)
    n = len(cfg["n_conv_per_stage_encoder"])
    dim = len(cfg["patch_size"])
    arch_kwargs = {
        "n_stages": n,
        "features_per_stage": [min(cfg["UNet_base_num_features"] * 2 ** i, cfg["unet_max_num_features"])
                               for i in range(n)],
        "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
        "kernel_sizes": cfg["conv_kernel_sizes"], "strides": cfg["pool_op_kernel_sizes"],
        ("n_conv_per_stage" if cls == "PlainConvUNet" else "n_blocks_per_stage"): cfg["n_conv_per_stage_encoder"],
        "n_conv_per_stage_decoder": cfg["n_conv_per_stage_decoder"], "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d", "norm_op_kwargs": dict(STANDARD_NORM_KWARGS),
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": dict(STANDARD_NONLIN_KWARGS)}
    out = {k: v for k, v in cfg.items() if k not in LEGACY_KEYS}
    out["architecture"] = {"network_class_name": cls, "arch_kwargs": arch_kwargs,
                           "_kw_requires_import": list(KW_REQUIRES_IMPORT)}
    return out


def _resolve_reference(raw: dict[str, dict[str, Any]], name: str, *, where: str) -> dict[str, Any]:
    """The reference's inheritance: recursive shallow update of the parent by the child."""
    chain: list[str] = []
    current: str | None = name
    while current is not None:
        if current not in raw:
            msg = f"{where}: inherits from unknown configuration {current!r}."
            raise PlansError(msg)
        if current in chain:
            msg = f"{where}: circular inheritance {' -> '.join([*chain, current])}."
            raise PlansError(msg)
        chain.append(current)
        current = raw[current].get("inherits_from")
    out: dict[str, Any] = {}
    for c in reversed(chain):
        out.update(raw[c])
    return out


# ---- export ---------------------------------------------------------------------------------------------------
def export_plans(plans: Plans) -> dict[str, Any]:
    """Convert :class:`Plans` into the reference's plans dict (key order as the reference writes it).

    Raises:
        PlansError: a component without a reference equivalent.
    """
    planner = plans.planner
    reference_class = PRESETS.get(planner).reference_class if planner in PRESETS else planner
    readers = {v: k for k, v in READERS.items()}
    return {
        "dataset_name": plans.dataset_name,
        "plans_name": plans.plans_name,
        "original_median_spacing_after_transp": list(plans.original_median_spacing_after_transp),
        "original_median_shape_after_transp": list(plans.original_median_shape_after_transp),
        "image_reader_writer": readers.get(plans.image_reader_writer, plans.image_reader_writer),
        "transpose_forward": list(plans.transpose_forward),
        "transpose_backward": list(plans.transpose_backward),
        "configurations": {name: _export_configuration(name, dict(cfg))
                           for name, cfg in plans.configurations.items()},
        "experiment_planner_used": reference_class,
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            k: dict(v) for k, v in plans.foreground_intensity_properties_per_channel.items()},
    }


def _export_configuration(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    where = f"plans configuration {name!r}"
    invert = {v: k for k, v in PREPROCESSORS.items()}
    out: dict[str, Any] = {}
    for key, value in cfg.items():  # keep the configuration's key order where the reference has a 1:1 key
        if key in SIMPLE_KEYS:
            out[key] = value
        elif key == "preprocessor":
            out["preprocessor_name"] = _lookup(invert, value, "preprocessor", where)
        elif key == "normalization":
            norms = {v: k for k, v in NORMALIZATION_CLASSES.items()}
            out["normalization_schemes"] = [_lookup(norms, c["name"], "normalization", where) for c in value]
            out["use_mask_for_norm"] = [bool(c.get("params", {}).get("use_mask_for_norm", False)) for c in value]
        elif key in RESAMPLING_KEYS:
            fns = {v: k for k, v in RESAMPLING_FUNCTIONS.items()}
            out[RESAMPLING_KEYS[key]] = _lookup(fns, value["name"], "resampling", where)
            out[f"{RESAMPLING_KEYS[key]}_kwargs"] = dict(value.get("params") or {})
        elif key == "network":
            out["architecture"] = export_network(value, where=where)
        elif key == "next_stage":
            out["next_stage"] = value[0] if isinstance(value, list) and len(value) == 1 else value
        else:
            msg = f"{where}: key {key!r} has no reference equivalent."
            raise PlansError(msg)
    return _reference_order(out)


def export_network(net: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Our ``network`` dict -> the reference's ``architecture`` dict."""
    name = net["name"]
    if name not in EXPORT_NETWORK_CLASSES:
        msg = f"{where}: network {name!r} has no reference equivalent."
        raise PlansError(msg)
    dim = len(net["kernel_sizes"][0])
    n = len(net["features_per_stage"])
    norm = net.get("norm", "instance")
    if norm not in EXPORT_NORM_OPS:
        msg = f"{where}: norm {norm!r} has no reference equivalent."
        raise PlansError(msg)
    arch_kwargs = {
        "n_stages": n,
        "features_per_stage": list(net["features_per_stage"]),
        "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
        "kernel_sizes": [list(k) for k in net["kernel_sizes"]],
        "strides": [list(s) for s in net["strides"]],
        BLOCKS_KEY[name]: list(net["blocks_per_stage"]),
        "n_conv_per_stage_decoder": list(net["convs_per_stage_decoder"]),
        "conv_bias": bool(net.get("conv_bias", True)),
        "norm_op": EXPORT_NORM_OPS[norm].format(d=dim),
        "norm_op_kwargs": dict(STANDARD_NORM_KWARGS),
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": _lookup(EXPORT_NONLINS, net.get("nonlin", "leaky_relu"), "nonlinearity", where),
        "nonlin_kwargs": dict(STANDARD_NONLIN_KWARGS),
    }
    return {"network_class_name": EXPORT_NETWORK_CLASSES[name], "arch_kwargs": arch_kwargs,
            "_kw_requires_import": list(KW_REQUIRES_IMPORT)}


_REFERENCE_CONFIG_ORDER = ("inherits_from", "data_identifier", "preprocessor_name", "batch_size", "patch_size",
                           "median_image_size_in_voxels", "spacing", "normalization_schemes", "use_mask_for_norm",
                           "resampling_fn_data", "resampling_fn_seg", "resampling_fn_data_kwargs",
                           "resampling_fn_seg_kwargs", "resampling_fn_probabilities",
                           "resampling_fn_probabilities_kwargs", "architecture", "batch_dice", "next_stage",
                           "previous_stage")


def _reference_order(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in _REFERENCE_CONFIG_ORDER if k in cfg}


# ---- helpers --------------------------------------------------------------------------------------------------
def _check_keys(data: Mapping[str, Any], required: tuple[str, ...], *, optional: tuple[str, ...] = (),
                where: str) -> None:
    missing = [k for k in required if k not in data and k not in optional]
    unknown = [k for k in data if k not in required and k not in optional]
    if missing:
        msg = f"{where}: missing key(s) {', '.join(missing)}."
        raise PlansError(msg)
    if unknown:
        msg = f"{where}: unsupported key(s) {', '.join(map(str, unknown))} (the rebuild cannot represent them)."
        raise PlansError(msg)


def _lookup(table: Mapping[str, str], value: Any, what: str, where: str) -> str:
    if value not in table:
        msg = f"{where}: {what} {value!r} is not supported. Supported: {', '.join(sorted(table))}."
        raise PlansError(msg)
    return table[value]


def _expect(value: Any, expected: Any, key: str, where: str) -> None:
    if value != expected:
        msg = f"{where}: {key} {value!r} is not supported (only {expected!r})."
        raise PlansError(msg)


def _per_stage(value: Any, n: int) -> list[Any]:
    values = list(value) if isinstance(value, list | tuple) else [value] * n
    if len(values) != n:
        raise PlansError(f"expected {n} per-stage values, got {len(values)}: {values}.")
    return [v if isinstance(v, list | tuple) else int(v) for v in values]


def _per_axis(value: Any, dim: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)] * dim

"""rt_info written into the IR, as openvino-dev's omz_converter writes it."""

from __future__ import annotations

from pathlib import Path

from omz_tools.errors import OmzError

# model_info keys omz_converter copies into rt_info ['model_info', key], with their kinds.
MODEL_INFO_KEYS = {
    "model_type": str, "confidence_threshold": float, "iou_threshold": float, "resize_type": str,
    "anchors": list, "masks": list, "labels": list,
}


class RtInfoError(OmzError, ValueError):
    pass


def model_info_items(model) -> list:
    """(key, value) pairs to write, validated as omz_converter validates them."""
    items = []
    for key, kind in MODEL_INFO_KEYS.items():
        if key not in model.model_info:
            continue
        value = model.model_info[key]
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise RtInfoError(f"model_info.{key}: expected a non-negative number, found {value!r}")
            value = float(value)
        elif not isinstance(value, kind):
            raise RtInfoError(f"model_info.{key}: expected a {kind.__name__}, found {value!r}")
        items.append((key, value))
    return items


def write_model_info(ov_model, items: list) -> None:
    """``items``: :func:`model_info_items` of the model (made where the registry entry is at hand)."""
    for key, value in items:
        ov_model.set_rt_info(value, ["model_info", key])


def set_output_dir(ov_model, ir_dir: Path) -> None:
    """MO records its --output_dir (our temporary folder) in rt_info; name the final folder instead."""
    if ov_model.has_rt_info(["conversion_parameters", "output_dir"]):
        ov_model.set_rt_info(str(ir_dir), ["conversion_parameters", "output_dir"])

"""The one place that imports OpenVINO's opset API.

``openvino.opset13`` where it exists (openvino 2025+), else ``openvino.runtime.opset13`` (openvino
2024.x, where the runtime namespace is the only one; newer releases deprecate and then remove it).
Opset 13 has every operation the translators use, with Softmax's ``axis`` (opset 8) and MaxPool's
second output (opset 8).
"""

from __future__ import annotations

import importlib

OPSET_VERSION = 13


def _load():
    errors = []
    for module in (f"openvino.opset{OPSET_VERSION}", f"openvino.runtime.opset{OPSET_VERSION}"):
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            errors.append(f"{module}: {exc}")
    from .errors import CaffeConversionError
    raise CaffeConversionError("the installed openvino has no opset %d API (%s); install openvino 2024.6 or newer"
                               % (OPSET_VERSION, "; ".join(errors)))


ops = _load()

import openvino as _ov  # noqa: E402  (after the opset: its absence is reported above)

Model = _ov.Model
Type = _ov.Type
Layout = _ov.Layout

"""A native Caffe front end: ``.prototxt`` + ``.caffemodel`` -> ``openvino.Model``, without Model Optimizer.

``convert(mo_args)`` takes the Model Optimizer argument list the converter builds (``--input_model``,
``--input_proto``, ``--input``, ``--input_shape``, ``--batch``, ``--mean_values``, ``--scale_values``,
``--scale``, ``--reverse_input_channels``, ``--output``, ``--layout``, ``--source_layout``,
``--target_layout``, ``--model_name``; ``--framework``, ``--output_dir``, ``--compress_to_fp16`` and
``--caffe_parser_path`` are accepted and ignored, MO's switches for its own passes and logging are
accepted with a note; see ``mo_args``) and gives those arguments Model Optimizer's meaning.
Every failure is a ``CaffeConversionError`` whose
message is for the user.

Importing this package imports neither openvino nor protobuf; ``convert`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from .errors import CaffeConversionError, UnsupportedArgumentError, UnsupportedLayerError

if TYPE_CHECKING:  # pragma: no cover
    import openvino

__all__ = ["CaffeConversionError", "UnsupportedLayerError", "UnsupportedArgumentError", "SUPPORTED_LAYER_TYPES",
           "convert", "versions", "FRONTEND_VERSION"]

FRONTEND_VERSION = "1"

# Kept in step with layers.TRANSLATORS (a test checks): listed here so that reading it imports nothing.
SUPPORTED_LAYER_TYPES = frozenset({
    "Input", "Convolution", "Deconvolution", "InnerProduct", "BatchNorm", "Scale", "ReLU", "PReLU", "Pooling",
    "Softmax", "Eltwise", "Concat", "Dropout", "Split", "LRN", "Power", "Sigmoid", "TanH", "Flatten", "Reshape",
    "Slice", "Permute", "Axpy",
    "PriorBox", "PriorBoxClustered", "DetectionOutput", "Normalize",  # layers_ssd
    "ReLU6", "ELU", "AbsVal", "BNLL", "Exp", "Log", "Bias", "Tile", "Reduction", "ShuffleChannel", "Crop", "ArgMax",
    "Interp",  # layers_extra
})


def convert(mo_args: Sequence[str], notes: Optional[list] = None) -> "openvino.Model":
    """Convert the Caffe model the Model Optimizer arguments name into an ``openvino.Model`` (FP32).
    ``notes``: a list that gets what the user should hear (e.g. the layers dropped by phase rules)."""
    from . import mo_args as args_module
    options = args_module.parse(list(mo_args))
    try:
        import numpy  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError as exc:
        raise CaffeConversionError(f"the native Caffe front end needs {exc.name}: pip install {exc.name}") from None
    from .build import build
    from .reader import read_net
    proto = options.input_proto
    if proto is None:
        from pathlib import Path
        guess = Path(options.input_model).with_suffix(".prototxt")
        if not guess.is_file():
            raise UnsupportedArgumentError(f"expected --input_proto=<file>.prototxt (no {guess} beside the caffemodel)")
        proto = str(guess)
    net = read_net(proto, options.input_model)
    if notes is not None:
        notes.extend(options.notes + net.notes)
    return build(net, options)


def versions() -> dict:
    """Versions that decide what ``convert`` produces (for the converter's up-to-date record)."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    try:
        from google.protobuf.internal import api_implementation
        backend = api_implementation.Type()
    except ImportError:
        backend = "not installed"
    return {"native_caffe": FRONTEND_VERSION, "openvino": version("openvino"), "numpy": version("numpy"),
            "protobuf": version("protobuf"), "protobuf_backend": backend}

"""INT8 IR with NNCF post-training quantization (``omz-quantizer``), Open Model Zoo's ``FP16-INT8``.

>>> from omz_tools.quantize import quantize
>>> quantize("se-resnet-101", dataset="ILSVRC2012_img_val", converted_dir="models")
QuantizeResult(xml=PosixPath('models/public/se-resnet-101/FP16-INT8/se-resnet-101.xml'), ...)

The FP32 IR is calibrated with ``nncf.quantize`` on ``subset_size`` images (spread evenly over the
annotation, or over the image files of the folder) preprocessed exactly as the accuracy check does
(the model's accuracy-check.yml), and saved with FP16 weights where they stay floating point:
``<output_dir>/<subdirectory>/FP16-INT8/<name>.xml|.bin``. The folder is staged and renamed into
place with a record of what produced it (source IR, calibration images, options, versions), so a
rerun with the same inputs is skipped and an interrupted run leaves the previous folder as it was.
With ``max_drop`` (and an annotation), ``nncf.quantize_with_accuracy_control`` keeps layers in
floating point until top-1 on the validation images drops by at most that much.
"""

from __future__ import annotations

from omz_tools.quantize.engine import (
    PRECISION, QuantizeError, QuantizeResult, is_quantizable, quantize,
)

__all__ = ["quantize", "QuantizeError", "QuantizeResult", "PRECISION", "is_quantizable"]

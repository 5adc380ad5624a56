"""The SSD fork's parameter messages (PriorBox, PriorBoxClustered, DetectionOutput, Normalize), merged
into ``schema.MESSAGES``/``schema.LAYER_PARAMS``. Fields and numbers are those of Model Optimizer's
``mo_caffe.proto`` (the SSD fork's ``caffe.proto`` plus ``PriorBoxClustered``'s width/height and
``density``/``fixed_size``/``fixed_ratio``), each message complete.

The schema numbers enum values 0..n-1; the fork's enums start at 1, so value 0 is a placeholder
(``*_UNSET``) that no prototxt names.
"""

from __future__ import annotations

# FieldDescriptorProto.Type values (as in schema.py; repeated here so this module imports nothing)
FLOAT, INT32, UINT32, BOOL, STRING, MESSAGE, ENUM = 2, 5, 13, 8, 9, 11, 14
OPTIONAL, REPEATED = 1, 3


def _f(number, name, kind, type_name=None, default=None, repeated=False):
    return (number, name, REPEATED if repeated else OPTIONAL, kind, type_name, default)


MESSAGES = {
    "PriorBoxParameter": ([
        _f(1, "min_size", FLOAT, repeated=True), _f(2, "max_size", FLOAT, repeated=True),
        _f(3, "aspect_ratio", FLOAT, repeated=True), _f(4, "flip", BOOL, default="true"),
        _f(5, "clip", BOOL, default="false"), _f(6, "variance", FLOAT, repeated=True),
        _f(7, "img_size", UINT32), _f(8, "img_h", UINT32), _f(9, "img_w", UINT32),
        _f(10, "step", FLOAT), _f(11, "step_h", FLOAT), _f(12, "step_w", FLOAT),
        _f(13, "offset", FLOAT, default="0.5"),
        _f(14, "width", FLOAT, repeated=True), _f(15, "height", FLOAT, repeated=True),
        _f(16, "fixed_size", FLOAT, repeated=True), _f(17, "fixed_ratio", FLOAT, repeated=True),
        _f(18, "density", FLOAT, repeated=True),
    ], {"CodeType": ("CODE_TYPE_UNSET", "CORNER", "CENTER_SIZE", "CORNER_SIZE")}),
    "NonMaximumSuppressionParameter": ([
        _f(1, "nms_threshold", FLOAT, default="0.3"), _f(2, "top_k", INT32), _f(3, "eta", FLOAT, default="1"),
    ], {}),
    "ResizeParameter": ([
        _f(1, "prob", FLOAT, default="1"),
        _f(2, "resize_mode", ENUM, "ResizeParameter.Resize_mode", "WARP"),
        _f(3, "height", UINT32, default="0"), _f(4, "width", UINT32, default="0"),
        _f(8, "height_scale", UINT32, default="0"), _f(9, "width_scale", UINT32, default="0"),
        _f(5, "pad_mode", ENUM, "ResizeParameter.Pad_mode", "CONSTANT"),
        _f(6, "pad_value", FLOAT, repeated=True),
        _f(7, "interp_mode", ENUM, "ResizeParameter.Interp_mode", repeated=True),
    ], {"Resize_mode": ("RESIZE_MODE_UNSET", "WARP", "FIT_SMALL_SIZE", "FIT_LARGE_SIZE_AND_PAD"),
        "Pad_mode": ("PAD_MODE_UNSET", "CONSTANT", "MIRRORED", "REPEAT_NEAREST"),
        "Interp_mode": ("INTERP_MODE_UNSET", "LINEAR", "AREA", "NEAREST", "CUBIC", "LANCZOS4")}),
    "SaveOutputParameter": ([
        _f(1, "output_directory", STRING), _f(2, "output_name_prefix", STRING), _f(3, "output_format", STRING),
        _f(4, "label_map_file", STRING), _f(5, "name_size_file", STRING), _f(6, "num_test_image", UINT32),
        _f(7, "resize_param", MESSAGE, "ResizeParameter"),
    ], {}),
    "DetectionOutputParameter": ([
        _f(1, "num_classes", UINT32), _f(2, "share_location", BOOL, default="true"),
        _f(3, "background_label_id", INT32, default="0"),
        _f(4, "nms_param", MESSAGE, "NonMaximumSuppressionParameter"),
        _f(5, "save_output_param", MESSAGE, "SaveOutputParameter"),
        _f(6, "code_type", ENUM, "PriorBoxParameter.CodeType", "CORNER"),
        _f(8, "variance_encoded_in_target", BOOL, default="false"), _f(7, "keep_top_k", INT32, default="-1"),
        _f(9, "confidence_threshold", FLOAT), _f(10, "visualize", BOOL, default="false"),
        _f(11, "visualize_threshold", FLOAT), _f(12, "save_file", STRING),
        _f(13, "input_width", INT32, default="-1"), _f(14, "input_height", INT32, default="-1"),
        _f(15, "normalized", BOOL, default="true"), _f(16, "objectness_score", FLOAT, default="0.01"),
    ], {}),
    "NormalizeParameter": ([
        _f(1, "across_spatial", BOOL, default="true"), _f(2, "scale_filler", MESSAGE, "FillerParameter"),
        _f(3, "channel_shared", BOOL, default="true"), _f(4, "eps", FLOAT, default="1e-10"),
    ], {}),
}

LAYER_PARAMS = {
    "norm_param": (204, "NormalizeParameter"), "detection_output_param": (211, "DetectionOutputParameter"),
    "prior_box_param": (212, "PriorBoxParameter"),
}

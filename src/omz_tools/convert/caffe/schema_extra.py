"""The parameter messages of layers_extra's layers, merged into ``schema.MESSAGES``/``schema.LAYER_PARAMS``.
Fields, numbers and defaults are those of Model Optimizer's ``mo_caffe.proto`` (Caffe's own
``caffe.proto`` plus the forks' Interp and ShuffleChannel), each message complete.

The schema numbers enum values 0..n-1; ReductionOp starts at 1, so value 0 is a placeholder that no
prototxt names.
"""

from __future__ import annotations

# FieldDescriptorProto.Type values (as in schema.py; repeated here so this module imports nothing)
FLOAT, INT32, UINT32, BOOL, MESSAGE, ENUM = 2, 5, 13, 8, 11, 14
OPTIONAL, REPEATED = 1, 3


def _f(number, name, kind, type_name=None, default=None, repeated=False):
    return (number, name, REPEATED if repeated else OPTIONAL, kind, type_name, default)


def _base_scale_shift():
    return [_f(1, "base", FLOAT, default="-1"), _f(2, "scale", FLOAT, default="1"), _f(3, "shift", FLOAT, default="0")]


MESSAGES = {
    "ExpParameter": (_base_scale_shift(), {}),
    "LogParameter": (_base_scale_shift(), {}),
    "BiasParameter": ([_f(1, "axis", INT32, default="1"), _f(2, "num_axes", INT32, default="1"),
                       _f(3, "filler", MESSAGE, "FillerParameter")], {}),
    "TileParameter": ([_f(1, "axis", INT32, default="1"), _f(2, "tiles", INT32)], {}),
    "ReductionParameter": ([_f(1, "operation", ENUM, "ReductionParameter.ReductionOp", "SUM"),
                            _f(2, "axis", INT32, default="0"), _f(3, "coeff", FLOAT, default="1")],
                           {"ReductionOp": ("REDUCTION_OP_UNSET", "SUM", "ASUM", "SUMSQ", "MEAN")}),
    "ShuffleChannelParameter": ([_f(1, "group", UINT32)], {}),
    "CropParameter": ([_f(1, "axis", INT32, default="2"), _f(2, "offset", UINT32, repeated=True),
                       _f(3, "dimsize", UINT32, repeated=True)], {}),
    "ArgMaxParameter": ([_f(1, "out_max_val", BOOL, default="false"), _f(2, "top_k", UINT32, default="1"),
                         _f(3, "axis", INT32)], {}),
    "InterpParameter": ([_f(1, "height", INT32, default="0"), _f(2, "width", INT32, default="0"),
                         _f(3, "zoom_factor", INT32, default="1"), _f(4, "shrink_factor", INT32, default="1"),
                         _f(5, "pad_beg", INT32, default="0"), _f(6, "pad_end", INT32, default="0")], {}),
}

LAYER_PARAMS = {
    "exp_param": (111, "ExpParameter"), "log_param": (134, "LogParameter"), "bias_param": (141, "BiasParameter"),
    "tile_param": (138, "TileParameter"), "reduction_param": (136, "ReductionParameter"),
    "shuffle_channel_param": (224, "ShuffleChannelParameter"), "crop_param": (144, "CropParameter"),
    "argmax_param": (103, "ArgMaxParameter"), "interp_param": (217, "InterpParameter"),
}

"""The Caffe message classes, built at run time from a schema held here (no protoc, no MO).

Only the messages the supported layers need are declared, each one complete (every field of the
upstream ``caffe.proto`` message), so a prototxt field that this schema does not know can only
belong to a layer or parameter that the converter does not translate (``param``,
``transform_param``, the parameters of unsupported layers). The text parser lets those through.
The phase rules (``include``/``exclude``, ``NetStateRule``, ``NetParameter.state``) are declared:
the reader keeps the layers Caffe keeps for inference.

Field numbers and defaults are facts of the Caffe format. ``BlobProto.data`` (5) and
``double_data`` (8), repeated floats/doubles, are declared as ``bytes``: a caffemodel's blobs are
decoded from their wire bytes by ``caffemodel`` (packed or unpacked, with numpy), never by
protobuf, which would make 49 M Python floats.

The classes live in a private descriptor pool under the package ``omz_tools_caffe``, so they never
clash with another Caffe schema (MO's ``mo_caffe``, Caffe's own ``caffe``) in the same process.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

PACKAGE = "omz_tools_caffe"

OPTIONAL, REPEATED = 1, 3
# FieldDescriptorProto.Type values
DOUBLE, FLOAT, INT64, UINT64, INT32, BOOL, STRING, MESSAGE, BYTES, UINT32, ENUM = 1, 2, 3, 4, 5, 8, 9, 11, 12, 13, 14

# (number, name, label, type, type name or None, default or None)
Field = Tuple[int, str, int, int, Optional[str], Optional[str]]


def _f(number, name, kind, type_name=None, default=None, repeated=False) -> Field:
    return (number, name, REPEATED if repeated else OPTIONAL, kind, type_name, default)


ENGINE = ("DEFAULT", "CAFFE", "CUDNN")

# message name -> (fields, {enum name: values in order of their numbers 0..n-1})
MESSAGES: Dict[str, Tuple[Iterable[Field], Dict[str, Tuple[str, ...]]]] = {
    "BlobShape": ([_f(1, "dim", INT64, repeated=True)], {}),
    "BlobProto": ([
        _f(7, "shape", MESSAGE, "BlobShape"),
        _f(5, "data", BYTES),          # packed float32 on the wire (see module docstring)
        _f(6, "diff", BYTES),
        _f(8, "double_data", BYTES),   # packed float64
        _f(9, "double_diff", BYTES),
        _f(1, "num", INT32, default="0"),
        _f(2, "channels", INT32, default="0"),
        _f(3, "height", INT32, default="0"),
        _f(4, "width", INT32, default="0"),
    ], {}),
    "FillerParameter": ([
        _f(1, "type", STRING, default="constant"), _f(2, "value", FLOAT, default="0"),
        _f(3, "min", FLOAT, default="0"), _f(4, "max", FLOAT, default="1"),
        _f(5, "mean", FLOAT, default="0"), _f(6, "std", FLOAT, default="1"),
        _f(7, "sparse", INT32, default="-1"), _f(8, "variance_norm", ENUM, "FillerParameter.VarianceNorm", "FAN_IN"),
        _f(9, "file", STRING), _f(10, "diag_val", FLOAT, repeated=True),
    ], {"VarianceNorm": ("FAN_IN", "FAN_OUT", "AVERAGE")}),
    "InputParameter": ([_f(1, "shape", MESSAGE, "BlobShape", repeated=True)], {}),
    "ConvolutionParameter": ([
        _f(1, "num_output", UINT32), _f(2, "bias_term", BOOL, default="true"),
        _f(3, "pad", UINT32, repeated=True), _f(4, "kernel_size", UINT32, repeated=True),
        _f(6, "stride", UINT32, repeated=True), _f(18, "dilation", UINT32, repeated=True),
        _f(9, "pad_h", UINT32, default="0"), _f(10, "pad_w", UINT32, default="0"),
        _f(11, "kernel_h", UINT32), _f(12, "kernel_w", UINT32),
        _f(13, "stride_h", UINT32), _f(14, "stride_w", UINT32),
        _f(5, "group", UINT32, default="1"),
        _f(7, "weight_filler", MESSAGE, "FillerParameter"), _f(8, "bias_filler", MESSAGE, "FillerParameter"),
        _f(15, "engine", ENUM, "ConvolutionParameter.Engine", "DEFAULT"),
        _f(16, "axis", INT32, default="1"), _f(17, "force_nd_im2col", BOOL, default="false"),
    ], {"Engine": ENGINE}),
    "BatchNormParameter": ([
        _f(1, "use_global_stats", BOOL), _f(2, "moving_average_fraction", FLOAT, default="0.999"),
        _f(3, "eps", FLOAT, default="1e-05"),
    ], {}),
    "ScaleParameter": ([
        _f(1, "axis", INT32, default="1"), _f(2, "num_axes", INT32, default="1"),
        _f(3, "filler", MESSAGE, "FillerParameter"), _f(4, "bias_term", BOOL, default="false"),
        _f(5, "bias_filler", MESSAGE, "FillerParameter"),
    ], {}),
    "PoolingParameter": ([
        _f(1, "pool", ENUM, "PoolingParameter.PoolMethod", "MAX"),
        _f(4, "pad", UINT32, default="0"), _f(9, "pad_h", UINT32, default="0"), _f(10, "pad_w", UINT32, default="0"),
        _f(2, "kernel_size", UINT32), _f(5, "kernel_h", UINT32), _f(6, "kernel_w", UINT32),
        _f(3, "stride", UINT32, default="1"), _f(7, "stride_h", UINT32), _f(8, "stride_w", UINT32),
        _f(11, "engine", ENUM, "PoolingParameter.Engine", "DEFAULT"),
        _f(12, "global_pooling", BOOL, default="false"),
        # Field 13 is ``round_mode`` (enum) in BVLC Caffe and ``ceil_mode`` (bool) in Model Optimizer's
        # schema and some forks: both are a varint 0/1 on the wire with opposite meanings. Only the
        # prototxt's parameters are read (by name), so round_mode takes a private number here.
        _f(13, "ceil_mode", BOOL, default="true"),
        _f(10013, "round_mode", ENUM, "PoolingParameter.RoundMode", "CEIL"),
    ], {"PoolMethod": ("MAX", "AVE", "STOCHASTIC"), "Engine": ENGINE, "RoundMode": ("CEIL", "FLOOR")}),
    "InnerProductParameter": ([
        _f(1, "num_output", UINT32), _f(2, "bias_term", BOOL, default="true"),
        _f(3, "weight_filler", MESSAGE, "FillerParameter"), _f(4, "bias_filler", MESSAGE, "FillerParameter"),
        _f(5, "axis", INT32, default="1"), _f(6, "transpose", BOOL, default="false"),
    ], {}),
    "SoftmaxParameter": ([
        _f(1, "engine", ENUM, "SoftmaxParameter.Engine", "DEFAULT"), _f(2, "axis", INT32, default="1"),
    ], {"Engine": ENGINE}),
    "EltwiseParameter": ([
        _f(1, "operation", ENUM, "EltwiseParameter.EltwiseOp", "SUM"), _f(2, "coeff", FLOAT, repeated=True),
        _f(3, "stable_prod_grad", BOOL, default="true"),
    ], {"EltwiseOp": ("PROD", "SUM", "MAX")}),
    "ConcatParameter": ([_f(2, "axis", INT32, default="1"), _f(1, "concat_dim", UINT32, default="1")], {}),
    "DropoutParameter": ([_f(1, "dropout_ratio", FLOAT, default="0.5")], {}),
    "LRNParameter": ([
        _f(1, "local_size", UINT32, default="5"), _f(2, "alpha", FLOAT, default="1"),
        _f(3, "beta", FLOAT, default="0.75"),
        _f(4, "norm_region", ENUM, "LRNParameter.NormRegion", "ACROSS_CHANNELS"),
        _f(5, "k", FLOAT, default="1"), _f(6, "engine", ENUM, "LRNParameter.Engine", "DEFAULT"),
    ], {"NormRegion": ("ACROSS_CHANNELS", "WITHIN_CHANNEL"), "Engine": ENGINE}),
    "PReLUParameter": ([_f(1, "filler", MESSAGE, "FillerParameter"), _f(2, "channel_shared", BOOL, default="false")], {}),
    "ReLUParameter": ([
        _f(1, "negative_slope", FLOAT, default="0"), _f(2, "engine", ENUM, "ReLUParameter.Engine", "DEFAULT"),
    ], {"Engine": ENGINE}),
    "SigmoidParameter": ([_f(1, "engine", ENUM, "SigmoidParameter.Engine", "DEFAULT")], {"Engine": ENGINE}),
    "TanHParameter": ([_f(1, "engine", ENUM, "TanHParameter.Engine", "DEFAULT")], {"Engine": ENGINE}),
    "PowerParameter": ([
        _f(1, "power", FLOAT, default="1"), _f(2, "scale", FLOAT, default="1"), _f(3, "shift", FLOAT, default="0"),
    ], {}),
    "FlattenParameter": ([_f(1, "axis", INT32, default="1"), _f(2, "end_axis", INT32, default="-1")], {}),
    "ReshapeParameter": ([
        _f(1, "shape", MESSAGE, "BlobShape"), _f(2, "axis", INT32, default="0"), _f(3, "num_axes", INT32, default="-1"),
    ], {}),
    "SliceParameter": ([
        _f(3, "axis", INT32, default="1"), _f(2, "slice_point", UINT32, repeated=True),
        _f(1, "slice_dim", UINT32, default="1"),
    ], {}),
    "PermuteParameter": ([_f(1, "order", UINT32, repeated=True)], {}),  # the SSD fork's Permute
    "ELUParameter": ([_f(1, "alpha", FLOAT, default="1")], {}),
    # The phase rules: which layers a net keeps in a given state (TRAIN/TEST, level, stages).
    "NetState": ([
        _f(1, "phase", ENUM, "Phase", "TEST"), _f(2, "level", INT32, default="0"),
        _f(3, "stage", STRING, repeated=True),
    ], {}),
    "NetStateRule": ([
        _f(1, "phase", ENUM, "Phase"), _f(2, "min_level", INT32), _f(3, "max_level", INT32),
        _f(4, "stage", STRING, repeated=True), _f(5, "not_stage", STRING, repeated=True),
    ], {}),
}

# Enums at the file's top level: name -> values in order of their numbers 0..n-1.
TOP_ENUMS: Dict[str, Tuple[str, ...]] = {"Phase": ("TRAIN", "TEST")}

# LayerParameter (V2, NetParameter.layer = 100): the generic fields, then one parameter message
# per supported layer type, and the phase rules. Everything else (param, data layers' parameters) is unknown.
LAYER_PARAMS = {
    "batch_norm_param": (139, "BatchNormParameter"), "concat_param": (104, "ConcatParameter"),
    "convolution_param": (106, "ConvolutionParameter"), "dropout_param": (108, "DropoutParameter"),
    "eltwise_param": (110, "EltwiseParameter"), "flatten_param": (135, "FlattenParameter"),
    "inner_product_param": (117, "InnerProductParameter"), "input_param": (143, "InputParameter"),
    "lrn_param": (118, "LRNParameter"), "pooling_param": (121, "PoolingParameter"),
    "permute_param": (154, "PermuteParameter"), "power_param": (122, "PowerParameter"),
    "prelu_param": (131, "PReLUParameter"), "relu_param": (123, "ReLUParameter"),
    "reshape_param": (133, "ReshapeParameter"), "scale_param": (142, "ScaleParameter"),
    "sigmoid_param": (124, "SigmoidParameter"), "softmax_param": (125, "SoftmaxParameter"),
    "slice_param": (126, "SliceParameter"), "tanh_param": (127, "TanHParameter"),
    "elu_param": (140, "ELUParameter"),
}

from . import schema_ssd  # noqa: E402  (the SSD fork's messages)
MESSAGES.update(schema_ssd.MESSAGES)
LAYER_PARAMS.update(schema_ssd.LAYER_PARAMS)
from . import schema_extra  # noqa: E402  (layers_extra's messages)
MESSAGES.update(schema_extra.MESSAGES)
LAYER_PARAMS.update(schema_extra.LAYER_PARAMS)

# V1LayerParameter (NetParameter.layers = 2): the old form, its type an enum.
V1_LAYER_TYPES = {
    "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3, "CONTRASTIVE_LOSS": 37,
    "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6, "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7,
    "ELTWISE": 25, "EXP": 38, "FLATTEN": 8, "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11,
    "IMAGE_DATA": 12, "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18, "SIGMOID": 19,
    "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20, "SOFTMAX_LOSS": 21, "SPLIT": 22,
    "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24, "THRESHOLD": 31,
}
V1_LAYER_PARAMS = {
    "concat_param": (9, "ConcatParameter"), "convolution_param": (10, "ConvolutionParameter"),
    "dropout_param": (12, "DropoutParameter"), "eltwise_param": (24, "EltwiseParameter"),
    "inner_product_param": (17, "InnerProductParameter"), "lrn_param": (18, "LRNParameter"),
    "pooling_param": (19, "PoolingParameter"), "power_param": (21, "PowerParameter"),
    "relu_param": (30, "ReLUParameter"), "sigmoid_param": (38, "SigmoidParameter"),
    "softmax_param": (39, "SoftmaxParameter"), "slice_param": (31, "SliceParameter"),
    "tanh_param": (37, "TanHParameter"),
}


def _layer_fields():
    fields = [_f(1, "name", STRING), _f(2, "type", STRING), _f(3, "bottom", STRING, repeated=True),
              _f(4, "top", STRING, repeated=True), _f(5, "loss_weight", FLOAT, repeated=True),
              _f(7, "blobs", MESSAGE, "BlobProto", repeated=True),
              _f(8, "include", MESSAGE, "NetStateRule", repeated=True),
              _f(9, "exclude", MESSAGE, "NetStateRule", repeated=True)]
    fields += [_f(number, name, MESSAGE, kind) for name, (number, kind) in LAYER_PARAMS.items()]
    return fields


def _v1_layer_fields():
    fields = [_f(2, "bottom", STRING, repeated=True), _f(3, "top", STRING, repeated=True), _f(4, "name", STRING),
              _f(5, "type", ENUM, "V1LayerParameter.LayerType"), _f(6, "blobs", MESSAGE, "BlobProto", repeated=True),
              _f(32, "include", MESSAGE, "NetStateRule", repeated=True),
              _f(33, "exclude", MESSAGE, "NetStateRule", repeated=True)]
    fields += [_f(number, name, MESSAGE, kind) for name, (number, kind) in V1_LAYER_PARAMS.items()]
    return fields


def _net_fields():
    return [_f(1, "name", STRING), _f(3, "input", STRING, repeated=True),
            _f(8, "input_shape", MESSAGE, "BlobShape", repeated=True), _f(4, "input_dim", INT32, repeated=True),
            _f(6, "state", MESSAGE, "NetState"),
            _f(100, "layer", MESSAGE, "LayerParameter", repeated=True),
            _f(2, "layers", MESSAGE, "V1LayerParameter", repeated=True)]


def _file_descriptor(name: str, package: str):
    from google.protobuf import descriptor_pb2
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto2")
    messages = dict(MESSAGES)
    messages["LayerParameter"] = (_layer_fields(), {})
    messages["V1LayerParameter"] = (_v1_layer_fields(), {"LayerType": None})
    messages["NetParameter"] = (_net_fields(), {})
    for enum_name, values in TOP_ENUMS.items():
        enum = proto.enum_type.add(name=enum_name)
        for number, value_name in enumerate(values):
            enum.value.add(name=value_name, number=number)
    for message_name, (fields, enums) in messages.items():
        message = proto.message_type.add(name=message_name)
        for enum_name, values in enums.items():
            enum = message.enum_type.add(name=enum_name)
            items = V1_LAYER_TYPES.items() if values is None else ((v, i) for i, v in enumerate(values))
            for value_name, number in items:
                enum.value.add(name=value_name, number=number)
        for number, field_name, label, kind, type_name, default in fields:
            field = message.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name is not None:
                field.type_name = f".{package}.{type_name}"
            if default is not None:
                field.default_value = default
    return proto


class Schema:
    """The message classes of one schema: ``NetParameter``, ``BlobProto``, ..."""

    def __init__(self, classes: Dict[str, Any]):
        self.__dict__.update(classes)


def _build() -> Schema:
    from google.protobuf import descriptor_pool
    pool = descriptor_pool.DescriptorPool()
    package = PACKAGE
    pool.Add(_file_descriptor("omz_tools_caffe.proto", package))
    classes = {}
    for name in list(MESSAGES) + ["LayerParameter", "V1LayerParameter", "NetParameter"]:
        descriptor = pool.FindMessageTypeByName(f"{package}.{name}")
        classes[name] = _message_class(descriptor)
    return Schema(classes)


def _message_class(descriptor):
    from google.protobuf import message_factory
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.21
    if get is not None:
        return get(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)  # protobuf 3.x


_SCHEMAS: List[Schema] = []


def schema() -> Schema:
    """The message classes (built once per process)."""
    if not _SCHEMAS:
        _SCHEMAS.append(_build())
    return _SCHEMAS[0]

"""The exceptions of the native Caffe front end (no heavy imports: the package's API re-exports them)."""

from __future__ import annotations

from omz_tools.errors import OmzError


class CaffeConversionError(OmzError):
    """A Caffe model could not be converted; the message (one paragraph) is for the user."""


class UnsupportedLayerError(CaffeConversionError):
    """The network holds a layer type the native front end does not translate."""


class UnsupportedArgumentError(CaffeConversionError):
    """A Model Optimizer argument the native front end does not understand."""

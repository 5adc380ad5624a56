"""The process's one OpenVINO Core, and the lock that serialises OpenVINO work across threads.

With ``-j`` each model runs on a thread of its own. Before, each thread made its own ``ov.Core``
and read, saved, compiled and ran its IR while another thread did the same: under load, two
threads were seen blocked for minutes in ``compiled(inputs)`` (``pthread_cond_timedwait`` inside
``_pyopenvino``: waiting for the GIL) after both Model Optimizer runs had exited. OpenVINO's
Python binding releases the GIL while it works and takes it back from its own worker threads
(tensor and callback lifetimes); two Python threads driving two Cores, each with its own CPU
plugin task arena, can then wait on each other. So every OpenVINO call of a conversion (reading,
building, saving, compiling, one inference) holds :data:`LOCK` and uses :func:`core`: one model
at a time is inside OpenVINO, on one Core. Model Optimizer runs stay concurrent (they are other
processes and the long part), and OpenVINO itself already uses every core for one model.

``import openvino as ov`` only (``ov.Core``, ``ov.save_model``, ``ov.Model``): present from
openvino 2024.6 to the newest, unlike ``openvino.runtime``.
"""

from __future__ import annotations

import threading

LOCK = threading.RLock()
_core = None


def core():
    """The shared ``openvino.Core`` (created on first use; call with :data:`LOCK` held)."""
    global _core
    with LOCK:
        if _core is None:
            import openvino as ov
            _core = ov.Core()
        return _core


_trim = None


def release_memory() -> None:
    """Give the heap memory freed so far back to the system.

    A model's weights are hundreds of blocks of a few MB; once glibc has raised its mmap threshold
    they come from the heap, and glibc keeps the freed pages for reuse. The conversion's next step
    (compiling the saved IR for its check) would then start hundreds of MB higher: malloc_trim
    returns them. Without glibc (macOS, musl) this does nothing."""
    global _trim
    if _trim is None:
        try:
            import ctypes
            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)

"""Steps 4 and 5 of a conversion: derive the precisions (``openvino.save_model(...,
compress_to_fp16=...)`` of the one FP32 model: Model Optimizer's FP16 output byte for byte, without
a second run; model_info written into rt_info as omz_converter does), then verify each IR against
the registry and the model card (ircheck). Every OpenVINO call holds ``runtime.LOCK``.
``conv`` is the run's :class:`~omz_tools.convert.engine.Converter`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omz_tools.convert.outcome import ModelFailed


class Saved:
    """A backend's result whose precisions are saved already (the ovc child saves them where it
    converted): only the checks are left."""


def derive_and_verify(conv, model, precisions, source, tmp, targets, outcome) -> None:
    """``source``: the FP32 .xml of Model Optimizer, or the native front end's openvino.Model, or
    :class:`Saved`; or a one-item list holding one, emptied here so that the model is freed once
    it is saved."""
    from omz_tools.convert import runtime
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        raise ModelFailed(f"cannot import the OpenVINO runtime in {sys.executable} ({exc}); it writes "
                          "FP16 and checks the IR. Install openvino there.") from None
    # One model at a time inside OpenVINO, on the process's one Core (see runtime.py: -j hung).
    with runtime.LOCK:
        _derive_and_verify_locked(conv, model, precisions, source, tmp, targets, outcome, runtime.core())


def model_info(model) -> list:
    """The model_info items written into every precision's rt_info (see save_precisions)."""
    from omz_tools.convert import rtinfo
    try:
        return rtinfo.model_info_items(model)
    except rtinfo.RtInfoError as exc:
        raise ModelFailed(f"{model.config_dir / 'model.yml'}: {exc}; fix the registry entry.") from None


def save_precisions(ov_model, name: str, info: list, precisions, tmp: Path, targets: dict, sizes: tuple) -> None:
    """Save ``ov_model`` (FP32) as each precision, ``tmp/<precision>/<name>.xml`` (``targets``: their
    final folders, for rt_info), with ``info`` (:func:`model_info`) in rt_info. ``sizes``: the
    estimated (xml, bin) bytes of FP32, for the room check. ModelFailed if the disk cannot hold them."""
    import openvino as ov

    from omz_tools.convert import rtinfo
    _check_room_to_save(precisions, sizes, tmp)
    rtinfo.write_model_info(ov_model, info)
    for precision in precisions:
        out_dir = tmp / precision
        out_dir.mkdir(parents=True, exist_ok=True)
        rtinfo.set_output_dir(ov_model, targets[precision])
        ov.save_model(ov_model, str(out_dir / f"{name}.xml"),
                      compress_to_fp16=precision.startswith("FP16"))
    _check_room_to_save(precisions, sizes, tmp, saved=True)


def _derive_and_verify_locked(conv, model, precisions, source, tmp, targets, outcome, core) -> None:
    from omz_tools.convert import ircheck, runtime
    if isinstance(source, list):
        source = source.pop()
    if not isinstance(source, Saved):
        conv.phase(model, outcome, "fp16", ", ".join(precisions))
        tmp.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            sizes = ((source).stat().st_size, source.with_suffix(".bin").stat().st_size)
        else:  # the native model's weights are about the caffemodel's size
            sizes = (4096 * len(source.get_ops()), sum(f.size for f in model.files))
        what = "Model Optimizer's output" if isinstance(source, Path) else "the native front end's model"
        info = model_info(model)
        try:
            ov_model = core.read_model(str(source)) if isinstance(source, Path) else source
            save_precisions(ov_model, model.name, info, precisions, tmp, targets, sizes)
            del ov_model, source
            runtime.release_memory()
        except (RuntimeError, ValueError) as exc:
            raise ModelFailed(f"reading {what} or saving it as "
                              f"{', '.join(precisions)} failed: {' '.join(str(exc).split())[:500]}") from None
    conv.phase(model, outcome, "verify")
    problems_all = []
    figures = None
    for precision in precisions:
        xml = tmp / precision / f"{model.name}.xml"
        try:
            # Counts once (on FP32 when converted); names, shapes and an inference on each.
            figures_p, problems = ircheck.check_ir(model, xml, core, counts=figures is None)
        except RuntimeError as exc:
            problems = [f"OpenVINO cannot read or run it: {' '.join(str(exc).split())[:300]}"]
            figures_p = None
        figures = figures or figures_p
        problems_all += [f"{precision}: {p}" for p in problems]
        runtime.release_memory()  # the compiled model of this precision, before the next one
    outcome.figures = figures
    if problems_all:
        raise ModelFailed(
            f"the converted IR does not match the registry entry ({model.config_dir / 'model.yml'}): "
            f"{'; '.join(problems_all)}. No IR was installed. Check the model files and "
            f"model_optimizer_args, or correct model_card if its figures are wrong.")


SAVE_MARGIN = 1 << 20  # bytes of slack on top of the estimate below


def _check_room_to_save(precisions: list, sizes: tuple, tmp: Path, saved: bool = False) -> None:
    """openvino.save_model does not report a full disk: it leaves the files cut short, which the
    IR check would then blame on the model. So compare the room it needs with the free space
    before saving: per precision up to twice the FP32 .xml (FP16 adds decompression nodes) plus
    its .bin (half of it for FP16), and a margin; and after saving (``saved``), a filesystem left
    with no free byte means the files were probably cut short. ``sizes``: (xml, bin) bytes of FP32."""
    xml_size, bin_size = sizes
    needed = SAVE_MARGIN + sum(2 * xml_size + (bin_size // 2 if p.startswith("FP16") else bin_size)
                               for p in precisions)
    free = shutil.disk_usage(tmp).free
    if (saved and free == 0) or (not saved and needed > free):
        from omz_tools.wording import human_size
        raise ModelFailed(
            f"not enough disk space to save the {', '.join(precisions)} IR in {tmp.parent}: it needs about "
            f"{human_size(needed)} ({needed} bytes), {human_size(free)} ({free} bytes) is free there"
            f"{' after saving, so the files were probably cut short' if saved else ''}. No IR was "
            f"installed (the {' and '.join(precisions)} folders are unchanged). Free some space or "
            "choose another --output_dir.")

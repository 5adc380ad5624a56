"""The info dumper's view of a model: omz_info_dumper's keys, in its order, then ours."""

from __future__ import annotations

from omz_tools.registry.schema import Model


def model_info(model: Model) -> dict:
    folder = model.registry_root / model.subdirectory
    accuracy_config = folder / "accuracy-check.yml"
    model_config = folder / "model.yml"
    info = {
        "name": model.name,
        "composite_model_name": model.composite_model_name,
        "description": model.description,
        "framework": model.framework,
        "license_url": model.license_url,
        "accuracy_config": str(accuracy_config) if accuracy_config.exists() else None,
        "model_config": str(model_config) if model_config.exists() else None,
        "precisions": sorted(model.precisions),
        "subdirectory": str(model.subdirectory),
        "task_type": str(model.task_type),
        "input_info": [{"name": i.name, "shape": i.shape, "layout": i.layout} for i in model.input_info],
        "model_stages": [model_info(stage) for stage in model.model_stages],
        # Extra keys, after omz_info_dumper's own.
        "files": [
            {"name": f.name.as_posix(), "size": f.size, f.checksum.algorithm: f.checksum.value,
             "source": f.source.describe()}
            for f in model.files
        ],
        "model_card": model.model_card,
    }
    return info

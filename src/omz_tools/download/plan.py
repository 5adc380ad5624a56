"""The plan of a download: one ModelJob per leaf model with its file tasks (filtered by
precision), and whether its postprocessing is still to do."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from omz_tools.download import records
from omz_tools.registry.schema import KNOWN_PRECISIONS, RegexReplace


@dataclass
class ModelJob:
    """One leaf model (a model, or a stage of a composite) and its file tasks."""

    model: object
    top: str  # the selected model it belongs to (result key)
    folder: Path
    tasks: list
    postprocess: bool  # postprocessing must run after its files are in
    skipped_reason: str = ""
    started: bool = False
    remaining: int = 0
    failures: list = field(default_factory=list)
    briefs: list = field(default_factory=list)  # (file name or None, cause in a few words)
    paths: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    begin_lock: threading.Lock = field(default_factory=threading.Lock)
    # Held from the model's first file to the end of its postprocessing, while postprocessing
    # is still to do: processes sharing the output folder then fetch and postprocess it once.
    model_lock: object = None


def model_lock_path(job: ModelJob) -> Path:
    """The hidden lock file that guards a model's fetching and postprocessing in its folder."""
    from omz_tools.locks import lock_path_for
    return lock_path_for(job.folder / f"{job.model.name}.postprocessing")


def _postprocessing_done(model, folder: Path) -> bool:
    """The model's postprocessing ran on these very files and its products are intact."""
    if not model.postprocessing:
        return True
    from omz_tools.download import postprocess  # only for models that have postprocessing
    entry = records.FolderRecord(folder).model(model.name)
    if entry.get("postprocessing") != postprocess.fingerprint(model):
        return False
    by_name = {f.name.as_posix(): f for f in model.files}
    for step in model.postprocessing:
        path = folder / step.file
        record = records.FolderRecord(path.parent).file(path.name)
        if isinstance(step, RegexReplace):
            if not record or record.get("state") != records.POSTPROCESSED:
                return False
        elif not record or record.get("state") != records.UNPACKED or path.exists() or (
                step.file.as_posix() in by_name and record.get("hash") != by_name[step.file.as_posix()].checksum.value):
            return False
    return all((folder / name).exists() for name in entry.get("outputs", []))


def plan(models: Iterable, output_dir: Path, precisions: Optional[set] = None,
         sources_for: Optional[Callable] = None) -> list:
    """ModelJobs for the selected models (composites expand to their stages), files filtered by
    precision as omz_downloader does. ``sources_for(model, model_file)`` gives a file's ordered
    sources (mirrors first, then the origin); by default its registry source only."""
    from omz_tools.download.tasks import FileTask

    if sources_for is None:
        from omz_tools.download.sources import candidates

        def sources_for(model, model_file):
            return candidates(model.subdirectory, model_file)

    requested = set(precisions) if precisions else set(KNOWN_PRECISIONS)
    jobs = []
    for top in models:
        for model in top.leaves():
            folder = Path(output_dir) / model.subdirectory
            job = ModelJob(model=model, top=top.name, folder=folder, tasks=[], postprocess=False)
            jobs.append(job)
            if precisions and not requested & set(model.precisions):
                job.skipped_reason = (f"{model.name} is not available in {','.join(sorted(requested))} "
                                      f"(it has {','.join(sorted(model.precisions))})")
                continue
            for model_file in model.files:
                parts = model_file.name.parts
                if len(parts) == 2 and parts[0] in KNOWN_PRECISIONS and parts[0] not in requested:
                    continue
                job.tasks.append(FileTask(model.name, model_file, folder / model_file.name,
                                          sources_for(model, model_file)))
            job.remaining = len(job.tasks)
            settle_postprocessing(job)
    return jobs


def settle_postprocessing(job: ModelJob) -> None:
    """Decides from the records whether the model's postprocessing is still to do; if it is done,
    its rewritten files count as verified, its consumed archives need no fetching, and its
    products are the model's paths."""
    model, folder = job.model, job.folder
    done = _postprocessing_done(model, folder)
    job.postprocess = bool(model.postprocessing) and not done
    if not (model.postprocessing and done):
        return
    unpacked = {step.file.as_posix() for step in model.postprocessing if not isinstance(step, RegexReplace)}
    for task in job.tasks:
        task.postprocessed_ok = True
        task.consumed = task.model_file.name.as_posix() in unpacked
    outputs = records.FolderRecord(folder).model(model.name).get("outputs", [])
    job.paths += [folder / name for name in outputs]

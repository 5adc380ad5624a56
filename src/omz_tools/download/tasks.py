"""The unit of work of the engine: one file to put in place, and what became of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Source:
    """One place a file can come from: a mirror (tried first, in order) or the original."""

    url: str  # for Google Drive: "google_drive:<id>" (the endpoint is transport.google_drive_url())
    kind: str = "http"  # "http" or "google_drive"
    drive_id: Optional[str] = None
    label: str = "original"  # "original", "mirror 1", ...

    @property
    def is_mirror(self) -> bool:
        return self.label != "original"

    def describe(self) -> str:
        return self.url if self.kind == "http" else f"Google Drive file {self.drive_id}"


def source_for(file_source) -> Source:
    """The Source for a registry FileSource."""
    if file_source.kind == "google_drive":
        return Source(url=f"google_drive:{file_source.id}", kind="google_drive", drive_id=file_source.id)
    return Source(url=file_source.url)


@dataclass
class FileTask:
    """One file to put at ``target``; ``sources`` are tried in order and the hash decides."""

    model_name: str  # the (stage) model's name, as events name it
    model_file: object  # registry ModelFile
    target: Path
    sources: list = field(default_factory=list)
    # True when the model's postprocessing is recorded as done, so a file it rewrote counts.
    postprocessed_ok: bool = False
    # An archive that unpack_archive already consumed (recorded): nothing to fetch.
    consumed: bool = False
    received: int = 0  # bytes received over the network for it, over all attempts

    @property
    def name(self) -> str:
        return self.model_file.name.as_posix()


@dataclass
class FileOutcome:
    task: FileTask
    ok: bool
    action: str  # "downloaded", "resumed", "present" (verified already), "failed", "cancelled"
    source: Optional[str] = None  # the URL that served it
    served_by: str = ""  # "original", "mirror <base URL>" or "cache <dir>"
    transferred: int = 0  # bytes received over the network
    message: str = ""  # the whole paragraph, said once (Error: line, result.failures)
    brief: str = ""  # the cause in a few words, for the one-line FAILED: summary

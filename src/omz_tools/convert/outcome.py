"""What a conversion run is asked (Options) and what it did (Outcome per model, ConvertResult),
and the two ways one model's conversion ends early (ModelFailed, Cancelled)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omz_tools.errors import OmzError, OmzInterrupted

BACKENDS = ("auto", "mo", "native", "ovc")
DEFAULT_PRECISIONS = ("FP32", "FP16")


class ModelFailed(OmzError):
    """One model cannot be converted; the message (one paragraph) says why and what to try.
    ``detail``: supporting lines shown after it (e.g. the tail of Model Optimizer's log)."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class Cancelled(OmzInterrupted):
    """The run was interrupted (Ctrl+C with -j): stop quietly, the interrupt itself is reported."""


@dataclass
class Options:
    download_dir: Path = Path(".")
    output_dir: Optional[Path] = None  # None: download_dir (set so on creation)
    precisions: Optional[set] = None  # default: FP32 and FP16 (what the model supports)
    python: Optional[str] = None
    mo: Optional[Path] = None
    extra_mo_args: list = field(default_factory=list)
    dry_run: bool = False
    jobs: int = 1
    force: bool = False
    download: bool = False
    # How --download fetches (cache, mirrors, offline, attempts, timeouts, minimum rate; the
    # environment's OMZ_* too); its output_dir is replaced by download_dir. None: the defaults.
    download_options: Optional["DownloadOptions"] = None  # noqa: F821 - omz_tools.download.DownloadOptions
    registries: list = field(default_factory=list)
    cache_root: Optional[Path] = None  # for the caffe_pb2 module (default ~/.cache/omz_tools)
    fast_caffe: bool = True  # False: MO's own parser (slow; for comparisons)
    backend: str = "auto"  # "auto", "mo" (Model Optimizer), "native" (convert.caffe, Caffe only) or "ovc" (convert_model)
    ir_cache: bool = True  # share IR through download_options' caches (convert/ircache.py); --no_ir_cache

    def __post_init__(self) -> None:
        self.download_dir = Path(self.download_dir)
        self.output_dir = Path(self.download_dir if self.output_dir is None else self.output_dir)


@dataclass
class Outcome:
    model: str
    ok: bool
    skipped: bool = False
    message: str = ""
    irs: dict = field(default_factory=dict)  # precision -> .xml path
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)
    mo_peak_rss: int = 0
    figures: object = None  # ircheck.Figures, or the record's dict when up to date
    backend: str = ""  # "mo" or "native": which one produced (or would produce) the IR
    card: dict = field(default_factory=dict)  # model_card's mparams/gflops the IR was checked against


@dataclass
class ConvertResult:
    outcomes: dict = field(default_factory=dict)  # top-level model name -> list of Outcome (stages)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failures(self) -> dict:
        return {name: "; ".join(o.message for o in outs if not o.ok)
                for name, outs in self.outcomes.items() if not all(o.ok for o in outs)}

    @property
    def successes(self) -> dict:
        """model -> {precision: .xml}; for a composite model, model -> {stage: {precision: .xml}}."""
        return {name: (outs[0].irs if len(outs) == 1 and outs[0].model == name else {o.model: o.irs for o in outs})
                for name, outs in self.outcomes.items() if all(o.ok for o in outs)}

    @property
    def skipped(self) -> list:
        return [name for name, outs in self.outcomes.items() if outs and all(o.ok and o.skipped for o in outs)]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted

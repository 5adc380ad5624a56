"""Postprocessing steps with Open Model Zoo's semantics (regex_replace, unpack_archive), except
that archives may only hold plain files and folders with relative paths inside the model folder,
must stay within a total size and a compression ratio (OMZ_UNPACK_MAX_SIZE, OMZ_UNPACK_MAX_RATIO)
and must fit in the free space, and may not hold a member named like the archive itself."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path, PurePosixPath

from omz_tools.download import records
from omz_tools.errors import OmzError
from omz_tools.limits import parse_size
from omz_tools.localstate import commit, fsync_dir, fsync_file, unlink_quietly, write_temp
from omz_tools.registry.schema import RegexReplace

_TAR_MODES = {"tar": "r:", "gztar": "r:gz", "bztar": "r:bz2", "xztar": "r:xz"}

# Bounds on what an archive may unpack to, settable through the environment. Model archives
# hold weights and configs that compress a few times at most; a decompression bomb declares
# hundreds to thousands of times its size (deflate tops out near 1032:1).
MAX_SIZE_VAR = "OMZ_UNPACK_MAX_SIZE"
MAX_RATIO_VAR = "OMZ_UNPACK_MAX_RATIO"
DEFAULT_MAX_SIZE = 64 << 30  # 64 GiB in total
DEFAULT_MAX_RATIO = 200.0  # declared total size / archive size

# regex_replace runs in a child interpreter with a time budget: Python's re backtracks, so a
# pattern like (a+)+$ can take longer than the universe on 35 bytes, cannot be interrupted from
# another thread, and postprocessing runs on worker threads. A child can simply be killed.
REGEX_TIMEOUT_VAR = "OMZ_REGEX_TIMEOUT"
DEFAULT_REGEX_TIMEOUT = 60.0  # seconds; an ordinary substitution on a config file takes milliseconds
_REGEX_CHILD = """
import json, re, sys
header = json.loads(sys.stdin.buffer.readline())
text = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
new_text, count = re.compile(header["pattern"], header["flags"]).subn(header["replacement"], text,
                                                                      count=header["count"])
sys.stdout.buffer.write(b"%d\\n" % count + new_text.encode("utf-8", "surrogatepass"))
"""


class PostprocessError(OmzError):
    """A postprocessing step failed; the message is for the user."""


def fingerprint(model) -> str:
    """Identifies the model's files and steps: a recorded postprocessing run counts only for these."""
    parts = [f"{f.name.as_posix()}:{f.checksum.value}" for f in model.files]
    for step in model.postprocessing:
        if isinstance(step, RegexReplace):
            parts.append(f"regex_replace:{step.file}:{step.pattern.pattern}:{step.replacement}:{step.count}")
        else:
            parts.append(f"unpack_archive:{step.file}:{step.format}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def regex_replace(folder: Path, step, source_hash: str = None) -> None:
    path = folder / step.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PostprocessError(f"regex_replace: cannot read {path} as UTF-8 text ({exc})") from None
    new_text, count = _bounded_subn(step, text, path)
    if count == 0:
        raise PostprocessError(f"regex_replace: the pattern {step.pattern.pattern!r} matched nothing in "
                               f"{path}; the file was left as it is. The registry entry's pattern no "
                               "longer fits the file; fix the pattern.")
    if step.count and count != step.count:
        raise PostprocessError(f"regex_replace: expected {step.count} matches of {step.pattern.pattern!r} in "
                               f"{path}, found {count}; the file was left as it is. Fix the pattern or count.")
    _remove_leftovers(path.parent, f".{path.name}.", ".regex-tmp")
    data = new_text.encode("utf-8")
    tmp = write_temp(path, data, suffix=".regex-tmp")
    try:
        original = path.with_name(path.name + ".orig")
        if not original.exists():  # as OMZ: keep the first original
            os.replace(path, original)
        commit(tmp, path)
    except BaseException:
        unlink_quietly(tmp)
        raise
    if source_hash:
        digest = hashlib.sha256(data).hexdigest()
        records.record_file(path, "sha256", digest, state=records.POSTPROCESSED, source_hash=source_hash)


def regex_timeout(env=None) -> float:
    """The time budget of one regex_replace step, from OMZ_REGEX_TIMEOUT (seconds)."""
    env = os.environ if env is None else env
    raw = env.get(REGEX_TIMEOUT_VAR, "").strip()
    if not raw:
        return DEFAULT_REGEX_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise PostprocessError(f"regex_replace: {REGEX_TIMEOUT_VAR}={raw!r} is not a number of seconds; "
                               f"give a positive number (the default is {DEFAULT_REGEX_TIMEOUT:g}).")
    return value


def _bounded_subn(step, text: str, path: Path) -> tuple:
    """step.pattern.subn(...) in a child interpreter killed after the time budget."""
    import json
    import subprocess
    import sys

    budget = regex_timeout()
    header = json.dumps({"pattern": step.pattern.pattern, "flags": step.pattern.flags,
                         "replacement": step.replacement, "count": step.count}).encode()
    data = header + b"\n" + text.encode("utf-8", "surrogatepass")
    try:
        # -I -S: no site-packages, no PYTHON* variables: a bare interpreter starts in ~20 ms.
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _REGEX_CHILD], input=data,
                              capture_output=True, timeout=budget)
    except subprocess.TimeoutExpired:
        raise PostprocessError(
            f"regex_replace: the pattern {step.pattern.pattern!r} did not finish on {path} within "
            f"{budget:g} s ({REGEX_TIMEOUT_VAR}); stopped it and left the file as it is. A pattern with "
            "nested repetition such as (a+)+ can backtrack for ever; fix the pattern in the registry "
            f"entry, or raise {REGEX_TIMEOUT_VAR} if the file is just very large.") from None
    except OSError as exc:
        raise PostprocessError(f"regex_replace: cannot start a Python interpreter ({sys.executable}) "
                               f"to apply {step.pattern.pattern!r} to {path}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PostprocessError(
            f"regex_replace: applying {step.pattern.pattern!r} to {path} failed "
            f"({lines[-1] if lines else f'exit status {done.returncode}'}); the file was left as it is.")
    count, _, rest = done.stdout.partition(b"\n")
    return rest.decode("utf-8", "surrogatepass"), int(count)


def _remove_leftovers(folder: Path, prefix: str, suffix: str = "") -> None:
    """Remove what an interrupted run left at our working names (files, folders, or links planted
    there, which are unlinked, never followed). Runs under the model's lock: no live peer owns them."""
    import shutil
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix):
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)  # rmtree never follows links inside
            else:
                path.unlink(missing_ok=True)


def unpack_limits(env=None) -> tuple:
    """(max total bytes, max ratio) from OMZ_UNPACK_MAX_SIZE (bytes, or with a K/M/G/T suffix,
    binary) and OMZ_UNPACK_MAX_RATIO; PostprocessError for a value that does not parse."""
    env = os.environ if env is None else env
    raw_size = env.get(MAX_SIZE_VAR, "").strip()
    raw_ratio = env.get(MAX_RATIO_VAR, "").strip()
    max_size, max_ratio = DEFAULT_MAX_SIZE, DEFAULT_MAX_RATIO
    if raw_size:
        parsed = parse_size(raw_size)
        if parsed is None:
            raise PostprocessError(f"unpack_archive: {MAX_SIZE_VAR}={raw_size!r} is not a size; give a "
                                   "positive number of bytes, optionally with K, M, G or T (e.g. 20G).")
        max_size = parsed
    if raw_ratio:
        try:
            max_ratio = float(raw_ratio)
        except ValueError:
            max_ratio = -1.0
        if not max_ratio > 0 or max_ratio == float("inf"):
            raise PostprocessError(f"unpack_archive: {MAX_RATIO_VAR}={raw_ratio!r} is not a ratio; give a "
                                   f"positive number (the default is {DEFAULT_MAX_RATIO:g}).")
    return max_size, max_ratio


class _Budget:
    """Adds up the members' declared sizes and refuses the archive as soon as a bound is passed."""

    def __init__(self, archive: Path):
        from omz_tools.wording import human_size
        self.archive = archive
        self.archive_size = max(os.path.getsize(archive), 1)
        self.max_size, self.max_ratio = unpack_limits()
        self.total = 0
        self._human = human_size

    def add(self, size: int) -> None:
        self.total += max(size, 0)
        human = self._human
        if self.total > self.max_size:
            raise PostprocessError(
                f"unpack_archive: refused to unpack {self.archive}: its members declare more than "
                f"{human(self.max_size)} ({self.total} bytes so far), beyond the bound set by "
                f"{MAX_SIZE_VAR}; nothing was extracted and the archive was kept. If the archive is "
                f"genuine, raise {MAX_SIZE_VAR} (e.g. {MAX_SIZE_VAR}=200G) and run again.")
        ratio = self.total / self.archive_size
        if ratio > self.max_ratio:
            raise PostprocessError(
                f"unpack_archive: refused to unpack {self.archive}: its members declare at least "
                f"{human(self.total)} ({self.total} bytes), {ratio:.0f} times the archive's "
                f"{human(self.archive_size)}, beyond the bound of {self.max_ratio:g} set by "
                f"{MAX_RATIO_VAR}; nothing was extracted and the archive was kept. Such a ratio is "
                "what a decompression bomb looks like; if the archive is genuine, raise "
                f"{MAX_RATIO_VAR} and run again.")

    def check_space(self, dest: Path) -> None:
        from omz_tools.download.space import free_bytes
        try:
            free = free_bytes(dest)
        except OSError:
            return  # unknown: extraction itself reports a full disk
        if self.total > free:
            human = self._human
            raise PostprocessError(
                f"unpack_archive: cannot unpack {self.archive}: its members need {human(self.total)} "
                f"({self.total} bytes) but only {human(free)} ({free} bytes) is free in {dest}; nothing "
                "was extracted and the archive was kept. Free some space or choose another "
                "--output_dir, then run again.")


def _unsafe_name(name: str):
    """Why this member name is refused, or None."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized):
        return "an absolute path"
    if ".." in PurePosixPath(normalized).parts:
        return "a path containing '..'"
    if not normalized.strip("/"):
        return "an empty name"
    return None


def _refuse(archive: Path, member: str, why: str) -> PostprocessError:
    return PostprocessError(
        f"unpack_archive: refused to unpack {archive}: member {member!r} is {why}; nothing was extracted "
        "and the archive was kept. Only plain files and folders inside the model folder are allowed, "
        "because such members could write outside it or link to other files; report the archive to the "
        "registry's maintainers.")


def _is_archive_itself(archive: Path, name: str) -> bool:
    """True for a member that would land at the archive's own path (and then be deleted with it)."""
    parts = [part for part in PurePosixPath(name.replace("\\", "/")).parts if part not in ("", ".", "/")]
    return parts == [archive.name]


def _zip_members(archive: Path, zf, budget: "_Budget") -> list:
    names = []
    for info in zf.infolist():
        why = _unsafe_name(info.filename)
        if why is None and _is_archive_itself(archive, info.filename):
            why = "named like the archive itself (it would replace the archive, then be deleted with it)"
        mode = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (e.g. made on Windows)
        if why is None and mode:
            if stat.S_ISLNK(mode):
                why = "a symbolic link"
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                why = "a device or other special file"
        if why:
            raise _refuse(archive, info.filename, why)
        budget.add(info.file_size)
        names.append(info.filename)
    return names


def _tar_members(archive: Path, tf, budget: "_Budget") -> list:
    members = []
    for member in tf:  # one header at a time: a bomb is refused before it is read through
        members.append(member)
        why = _unsafe_name(member.name)
        if why is None and _is_archive_itself(archive, member.name):
            why = "named like the archive itself (it would replace the archive, then be deleted with it)"
        if why is None:
            if member.issym():
                why = "a symbolic link"
            elif member.islnk():
                why = "a hard link"
            elif not (member.isreg() or member.isdir()):
                why = "a device, FIFO or other special file"
        if why:
            raise _refuse(archive, member.name, why)
        budget.add(member.size if member.isreg() else 0)
    return members


def _move_tree(staging: Path, dest: Path) -> None:
    """Move every extracted file into place by fsync and atomic rename: no half-written file at a
    final path, even after a crash (the record that says "unpacked" is written after this)."""
    for root, dirs, files in os.walk(staging):
        target_root = dest / Path(root).relative_to(staging)
        target_root.mkdir(parents=True, exist_ok=True)
        for name in files:
            fsync_file(Path(root) / name)
            os.replace(Path(root) / name, target_root / name)
        if files:
            fsync_dir(target_root)


def unpack_archive(folder: Path, step) -> list:
    """Extract next to the archive, then remove it (as OMZ does). Returns the extracted file names.

    Members are extracted into a hidden staging folder beside the archive first and renamed into
    place afterwards, so an interrupted run leaves no half-extracted file at a final path.
    """
    import shutil
    import tarfile  # only when a model has archives: keeps start-up short
    import zipfile

    import tempfile

    archive = folder / step.file
    dest = archive.parent
    _remove_leftovers(dest, f".{archive.name}.unpacking")  # left by an interrupted run
    # A new folder of our own (mkdir fails on anything already there, a link included).
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.unpacking-", dir=dest))
    try:
        budget = _Budget(archive)
        if step.format == "zip":
            with zipfile.ZipFile(archive) as zf:
                names = _zip_members(archive, zf, budget)
                budget.check_space(dest)
                zf.extractall(staging)
            outputs = [n for n in names if not n.endswith("/")]
        else:
            with tarfile.open(archive, _TAR_MODES[step.format]) as tf:
                members = _tar_members(archive, tf, budget)
                budget.check_space(dest)
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(staging, members=members, filter="data")
                else:  # Python < 3.12 without the backported filters: members were checked above
                    tf.extractall(staging, members=members)
            outputs = [m.name for m in members if m.isreg()]
        _move_tree(staging, dest)
    except PostprocessError:
        raise
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise PostprocessError(f"unpack_archive: cannot unpack {archive} as {step.format} ({exc}); "
                               "the archive was kept") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()
    rel = dest.relative_to(folder)
    return [(rel / n.replace("\\", "/").strip("/")).as_posix() for n in outputs]


def run(model, folder: Path) -> list:
    """Apply the model's steps in order. Returns the files unpacked from archives (relative)."""
    by_name = {f.name.as_posix(): f for f in model.files}
    outputs = []
    for step in model.postprocessing:
        name = step.file.as_posix()
        model_file = by_name.get(name)
        if isinstance(step, RegexReplace):
            regex_replace(folder, step, model_file.checksum.value if model_file else None)
        else:
            outputs += unpack_archive(folder, step)
            if model_file is not None:
                records.FolderRecord((folder / step.file).parent).set_file(
                    (folder / step.file).name, {"state": records.UNPACKED,
                                                "algorithm": model_file.checksum.algorithm,
                                                "hash": model_file.checksum.value})
    return outputs

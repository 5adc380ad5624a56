"""Everything the tools keep on local disk goes through here: atomic writes, fsync, the stat
fingerprint that lets a rerun trust a file without re-hashing it, file hashing, linking a file
into place (reflink, else hardlink, else copy), and opening working files without following links.

Atomic write: the bytes go to a new hidden file with a unique name beside the target (pid,
thread, random; created with O_EXCL, never through a link), are fsynced, then one ``os.replace``
puts them at the target and the folder is fsynced. A reader sees the old file or the new one,
never half of one; no two writers share a temporary file; a crash leaves at most a hidden
temporary file, never a torn target.

Working files at fixed names (``<file>.part``, ``.omz_verified.json``, lock files, cache records)
live in folders the tool does not own exclusively. Whoever can create entries there could plant a
symbolic link (or a FIFO) at such a name; following it would create or overwrite a file outside
the output folder, or block forever. So these names are opened only with O_NOFOLLOW (and
O_NONBLOCK, so a FIFO cannot block the open), only a regular file is accepted, and anything else
found at such a name is removed and said, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Optional

from omz_tools.errors import OmzError

CHUNK_SIZE = 1 << 20  # 1 MiB: big enough that hashlib releases the GIL and syscalls stay few
FICLONE = 0x40049409  # linux/fs.h _IOW(0x94, 9, int); fcntl.FICLONE exists only from Python 3.12

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL  # a temporary file: created here, never through a link
# Errors meaning "this way of linking is not possible here", so the next way is tried.
_LINK_UNSUPPORTED = {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP,
                     errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTTY, errno.ENOSYS, errno.EBADF}


# -- fsync -----------------------------------------------------------------------------------------

def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to the disk; errors propagate (the caller must not rename an unsynced file)."""
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (renames into it); best effort, as some filesystems refuse it."""
    try:
        fd = os.open(folder, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- working files: never through a link -----------------------------------------------------------

class NotRegularFile(OmzError, OSError):
    """A working file's name holds something else than a regular file (a link, FIFO, device...)."""


def describe_entry(path: Path) -> Optional[str]:
    """What is at ``path`` if it is neither absent, a regular file nor a folder ("a symbolic link
    to X", "a FIFO"...), else None. Never follows a link."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file"


def remove_foreign(path: Path) -> Optional[str]:
    """Remove a link or special file found where the tool keeps a working file of its own; return
    one sentence saying so (None when ``path`` is absent, a regular file or a folder)."""
    what = describe_entry(path)
    if what is None:
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # unlink removes the link itself, never its target
    return (f"{path} was {what}, where omz-downloader keeps a working file of its own; removed it "
            "without following it (nothing was read or written through it)")


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` for a working file: never through a symbolic link, never blocking on a FIFO,
    and only a regular file (else NotRegularFile). The descriptor is blocking again on return."""
    fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
        if _NONBLOCK:
            import fcntl
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_link_error(exc: OSError) -> bool:
    """True for the error of opening a working file through a link (O_NOFOLLOW) or at a special file."""
    return isinstance(exc, NotRegularFile) or exc.errno in (errno.ELOOP, errno.ENXIO)


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# -- atomic writes ---------------------------------------------------------------------------------

def temp_name(name: str, suffix: str = ".tmp") -> str:
    """A hidden name unique across processes, threads and hosts sharing an NFS folder."""
    return f".{name}.{os.getpid()}.{threading.get_ident()}.{os.urandom(6).hex()}{suffix}"


def write_temp(path: Path, data: bytes, *, suffix: str = ".tmp", folder: Optional[Path] = None,
               sync: bool = True) -> Path:
    """``data`` in a new temporary file beside ``path`` (or in ``folder``), fsynced when ``sync``,
    for :func:`commit`; removed again if writing it fails."""
    tmp = Path(folder or path.parent) / temp_name(path.name, suffix)
    try:
        with open(open_regular(tmp, NEW_FILE), "wb") as stream:
            stream.write(data)
            if sync:
                stream.flush()
                os.fsync(stream.fileno())
    except BaseException:
        unlink_quietly(tmp)
        raise
    return tmp


def commit(tmp: Path, path: Path, *, sync: bool = True) -> None:
    """Rename a finished temporary file over ``path`` and (``sync``) make the rename durable."""
    os.replace(tmp, path)  # replaces whatever is at the name (a link itself, not its target)
    if sync:
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes, *, suffix: str = ".tmp", sync: bool = True) -> None:
    """Put ``data`` at ``path`` all at once (see the module's docstring). ``sync=False`` skips the
    two fsyncs, for records that are only shortcuts (see :func:`write_json`)."""
    tmp = write_temp(path, data, suffix=suffix, sync=sync)
    try:
        commit(tmp, path, sync=sync)
    except BaseException:
        unlink_quietly(tmp)
        raise


def write_json(path: Path, data: dict, *, sync: bool = True) -> None:
    """A JSON record, atomically. The downloader's records (``.omz_verified.json``, ``.part.json``,
    cache records) pass ``sync=False``: each is only a shortcut (lost or damaged, it reads as no
    record and the file is hashed again), while two fsyncs per verified file cost tens of
    milliseconds on a busy disk; the rename still means a reader never sees half a record."""
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"), sync=sync)


def read_json(path: Path) -> dict:
    """A JSON object written by :func:`write_json`; {} when absent, damaged, not an object, or not
    a regular file (a link at a record's name reads as no record, and is replaced on write)."""
    try:
        with open(open_regular(path, os.O_RDONLY), encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the stat fingerprint and hashing --------------------------------------------------------------

def stat_fingerprint(path: Path) -> Optional[dict]:
    """Size, mtime_ns, inode and device of ``path`` (None if absent): while they match what was
    recorded when the file was verified, the file is taken to be that file without re-hashing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "device": st.st_dev}


def fingerprint_holds(entry: Optional[dict], path: Path) -> bool:
    """True when the file at ``path`` still has the fingerprint recorded in ``entry``."""
    if not entry:
        return False
    fields = stat_fingerprint(path)
    return fields is not None and all(entry.get(k) == v for k, v in fields.items())


def hash_file(path: Path, algorithm: str, *, limit: Optional[int] = None, hasher=None) -> tuple[str, int]:
    """(hex digest, bytes read) over the first ``limit`` bytes of ``path`` (all of it if None),
    read in 1 MiB chunks (hashlib releases the GIL on them). A given ``hasher`` is updated in place."""
    hasher = hasher or hashlib.new(algorithm)
    view = memoryview(bytearray(CHUNK_SIZE))
    done = 0
    with open(path, "rb", buffering=0) as stream:
        while limit is None or done < limit:
            want = CHUNK_SIZE if limit is None else min(CHUNK_SIZE, limit - done)
            got = stream.readinto(view[:want])
            if not got:
                break
            hasher.update(view[:got])
            done += got
    return hasher.hexdigest(), done


# -- linking a file into place ---------------------------------------------------------------------

def copy_new(src: Path, dst: Path) -> None:
    """Copy src into a new file dst, created exclusively (never through a link planted at its
    name); where sendfile(2) exists the kernel copies, no bytes pass through Python."""
    import shutil
    with open(src, "rb") as source, open(open_regular(dst, NEW_FILE), "wb") as target:
        try:
            if hasattr(os, "sendfile"):
                size, offset = os.fstat(source.fileno()).st_size, 0
                while offset < size:
                    sent = os.sendfile(target.fileno(), source.fileno(), offset, min(size - offset, 1 << 30))
                    if not sent:
                        break
                    offset += sent
            else:  # pragma: no cover - not Linux
                shutil.copyfileobj(source, target)
        except BaseException:
            target.close()
            unlink_quietly(dst)
            raise


def reflink(src: Path, dst: Path) -> None:
    """Clone src into a new file dst (copy-on-write); raises OSError where unsupported."""
    import fcntl
    with open(src, "rb") as source, open(open_regular(dst, NEW_FILE), "wb") as target:
        try:
            fcntl.ioctl(target.fileno(), FICLONE, source.fileno())
        except OSError:
            target.close()
            unlink_quietly(dst)
            raise


def link_or_copy(src: Path, tmp: Path, *, allow_link: bool = True, sync: bool = True) -> str:
    """Make the new file ``tmp`` hold src's bytes: reflink, else hardlink, else a copy (fsynced
    when ``sync``). Returns "reflink", "hardlink" or "copy"."""
    if allow_link:
        for method, attempt in (("reflink", reflink), ("hardlink", os.link)):
            try:
                attempt(src, tmp)
                return method
            except OSError as exc:
                if exc.errno not in _LINK_UNSUPPORTED:
                    raise
    copy_new(src, tmp)
    if sync:
        fsync_file(tmp)
    return "copy"


def place(src: Path, dest: Path, *, allow_link: bool = True, sync: bool = True) -> str:
    """Make ``dest`` hold src's bytes atomically: :func:`link_or_copy` into a unique temporary
    name beside dest, then ``os.replace``. Returns the method used, or "present" when dest is
    already that very file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if os.path.samefile(src, dest):
            return "present"  # rename(2) of two links to one inode would silently do nothing
    tmp = dest.with_name(temp_name(dest.name))
    try:
        method = link_or_copy(src, tmp, allow_link=allow_link, sync=sync)
        os.replace(tmp, dest)
        tmp = None
        return method
    finally:
        if tmp is not None:
            unlink_quietly(tmp)

"""Converted IR shared through the download caches (the folder cache and S3 buckets), so a runner
whose conversion would give the same IR fetches and verifies it instead of converting.

The key of one precision's IR is the up-to-date record's key (``records.conversion_key``: the
input files' registry hashes, the resolved MO command or arguments, the backend, the precision,
the versions of openvino, Model Optimizer, protobuf and omz_tools, model_info, the model card)
made portable: the input files' local stat is left out and the download and output folders in
the command become ``$dl_dir`` and ``$out_dir``. Its sha256 names a manifest,
``ir/<aa>/<rest>.json`` beside the file entries (``DIR/ir/...`` in a folder cache,
``PREFIX/ir/...`` in a bucket), which holds the whole key (compared on reading) and each IR
file's size and sha256; the files themselves are ordinary ``sha256`` entries of the cache. A
manifest is published only after every file it names is stored.

Nothing read is trusted: a manifest whose key differs, or any file whose size or hash is not the
manifest's, is refused (said in one line) and the model is converted as if there were no cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Optional

from omz_tools.convert import records
from omz_tools.localstate import hash_file, write_json

FORMAT = 1
_LOCK = threading.Lock()


def portable_key(key: dict, download_dir: Path, output_dir: Path, mo_dir: Optional[Path] = None) -> dict:
    """The record key without what differs between machines that convert the same way: the input
    files' stat, the folders (as ``$dl_dir``, ``$out_dir``, ``$mo_dir``) and where the interpreter's
    environment lives (its Python version stays)."""
    places = {str(Path(download_dir)): "$dl_dir", str(Path(output_dir)): "$out_dir"}
    if mo_dir is not None:
        places[str(Path(mo_dir))] = "$mo_dir"

    def local(part: str) -> str:
        for path, name in sorted(places.items(), key=lambda item: -len(item[0])):
            part = part.replace(path, name)
        return part
    command = [local(part) for part in key["mo_command"]]
    if command and command[0].startswith("python ") and " in " in command[0]:  # mo.MoInfo.interpreter_id
        command[0] = command[0].split(" in ", 1)[0]
    return {**key, "inputs": [{k: v for k, v in item.items() if k != "stat"} for item in key["inputs"]],
            "mo_command": command}


def _portable(converter, key: dict) -> dict:
    options = converter.options
    mo_dir = converter.mo_info().mo_dir if key.get("versions", {}).get("backend") == "mo" else None
    return portable_key(key, options.download_dir, options.output_dir, mo_dir)


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class IrCache:
    """The tiers of one converter run: a folder cache (``ContentCache``) and ``S3Tier``s, nearest first."""

    def __init__(self, folder, tiers: list, say):
        self.folder, self.tiers, self.say = folder, tiers, say
        self.refused: set = set()  # sha256 of bucket objects that did not verify: replaced on save

    @classmethod
    def of(cls, converter) -> Optional["IrCache"]:
        """The converter's IR cache (made once), or None without caches or with --no_ir_cache."""
        with _LOCK:
            if not hasattr(converter, "_ir_cache"):
                converter._ir_cache = None
                wanted = converter.options.download_options
                if getattr(converter.options, "ir_cache", True) and wanted is not None and (
                        wanted.cache_dir is not None or wanted.s3_caches):
                    from omz_tools.download.options import RunOptions
                    live = RunOptions.of(wanted)
                    converter._ir_cache = cls(live.cache, live.tiers,
                                              lambda name, text: converter.reporter.phase(name, "ir cache", text))
            return converter._ir_cache

    # -- reading --------------------------------------------------------------------------------

    def _manifest(self, digest: str, key: dict):
        """(manifest, where) from the nearest tier holding one for ``key``, else (None, None)."""
        for where, text in self._manifests(digest):
            try:
                manifest = json.loads(text)
            except ValueError:
                manifest = None
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
                    or manifest.get("key") != json.loads(json.dumps(key)) or not isinstance(manifest.get("files"), dict):
                yield None, where
                continue
            yield manifest, where

    def _manifests(self, digest: str):
        if self.folder is not None:
            path = self.folder.root / "ir" / digest[:2] / f"{digest[2:]}.json"
            if path.is_file():
                yield str(self.folder.root), path.read_text(encoding="utf-8", errors="replace")
        for tier in self.tiers:
            if not tier.usable():
                continue
            try:
                answer = tier.reader.get_object(Bucket=tier.where.bucket, Key=tier.where.key("ir", digest[:2],
                                                                                            f"{digest[2:]}.json"))
            except Exception:  # noqa: BLE001 - absent or unreadable: a miss there
                continue
            try:  # a manifest is a few KiB: one past 1 MiB is cut there, fails to parse and is refused
                text = answer["Body"].read(1 << 20).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - a broken read: a miss there
                continue
            finally:
                answer["Body"].close()
            yield tier.where.url, text

    def _fetch_file(self, where: str, digest: str, size: int, dest: Path) -> bool:
        if self.folder is not None and where == str(self.folder.root):
            placed, _ = self.folder.fetch_to("sha256", digest, size, dest, full_check=True)
            return placed is not None
        tier = next(t for t in self.tiers if t.where.url == where)
        from omz_tools.download.verify import StreamWriter
        writer = StreamWriter(dest, 0, hashlib.sha256())  # hashes as it writes: no hasher for read_object
        try:
            read = tier.read_object(tier.where.object_key("sha256", digest), size,
                                    sink=lambda chunk: writer.put_buffer(chunk, len(chunk)))
            if read.overran or read.size != size:  # more or fewer bytes than the manifest says
                writer.abort()
                dest.unlink(missing_ok=True)
                return False
            return writer.finish() == digest
        except Exception:  # noqa: BLE001 - absent, refused or a broken read: a miss
            writer.abort()
            dest.unlink(missing_ok=True)
            return False

    def restore(self, model, key: dict, folder: Path) -> Optional[dict]:
        """Fill ``folder`` with the verified IR of ``key`` (portable) from the nearest tier holding it;
        the record's extra fields (backend, figures...) or None on a miss or a refused object."""
        digest = key_digest(key)
        for manifest, where in self._manifest(digest, key):
            if manifest is None:
                self.say(model.name, f"refused the manifest {digest[:16]}... in {where} (not this "
                                     "conversion's key, or unreadable); converting instead")
                return None
            folder.mkdir(parents=True, exist_ok=True)
            for name, entry in manifest["files"].items():
                if "/" in name or name.startswith(".") or not self._fetch_file(
                        where, str(entry.get("sha256", "")), int(entry.get("size", -1)), folder / name):
                    self.refused.add(str(entry.get("sha256", "")))
                    self.say(model.name, f"{name} from {where} did not verify against its manifest "
                                         f"(expected {entry.get('size')} bytes with sha256 {entry.get('sha256')}); "
                                         "refused it, converting instead")
                    return None
            return {**manifest.get("extra", {}), "ir_cache": where}
        return None

    # -- writing --------------------------------------------------------------------------------

    def save(self, model, key: dict, folder: Path) -> None:
        """Store an installed, verified IR folder's files and then its manifest in every tier."""
        record = records.read(folder) or {}
        files = {}
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                digest, size = hash_file(path, "sha256")
                files[path.name] = {"size": size, "sha256": digest}
        extra = {k: v for k, v in record.items() if k not in ("format", "key", "outputs")}
        manifest = json.dumps({"format": FORMAT, "key": key, "files": files, "extra": extra}, sort_keys=True)
        digest = key_digest(key)
        if self.folder is not None:
            try:
                for name, entry in files.items():
                    self.folder.store(folder / name, "sha256", entry["sha256"], entry["size"], verified=True)
                path = self.folder.root / "ir" / digest[:2] / f"{digest[2:]}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, json.loads(manifest))
            except Exception as exc:  # noqa: BLE001 - the IR itself is installed and fine
                self.say(model.name, f"could not store the IR in {self.folder.root}: {exc}")
        for tier in self.tiers:
            for name, entry in files.items():
                problem = tier.publish(folder / name, "sha256", entry["sha256"],
                                       replace=entry["sha256"] in self.refused)
                if problem:
                    self.say(model.name, problem)
                    break
            else:
                if tier.usable():
                    try:
                        tier.client.put_object(Bucket=tier.where.bucket, Body=manifest.encode(),
                                               Key=tier.where.key("ir", digest[:2], f"{digest[2:]}.json"))
                    except Exception as exc:  # noqa: BLE001
                        self.say(model.name, tier.describe_failure(exc, "uploading"))


def restore_installed(converter, model, precisions: list, keys: dict, paths: dict, targets: dict, outcome) -> bool:
    """Install every requested precision's IR from the cache (True), or nothing (False: convert)."""
    import shutil

    from omz_tools.convert.install import install
    cache = IrCache.of(converter)
    if cache is None or converter.options.force:
        return False
    tmp = paths["tmp"]
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        extras = {}
        for precision in precisions:
            extras[precision] = cache.restore(model, _portable(converter, keys[precision]), tmp / precision)
            if extras[precision] is None:
                return False
        converter.reporter.phase(model.name, "install", f"the IR from the IR cache {extras[precisions[0]]['ir_cache']}")
        for precision in precisions:
            records.write(tmp / precision, keys[precision], model.name, extra=extras[precision])
            install(tmp / precision, targets[precision], tmp)
            outcome.irs[precision] = targets[precision] / f"{model.name}.xml"
        outcome.figures = extras[precisions[0]].get("figures")
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_installed(converter, model, precisions: list, keys: dict, targets: dict) -> None:
    """After a conversion: its installed IR into every cache tier (nothing without caches)."""
    cache = IrCache.of(converter)
    if cache is None:
        return
    for precision in precisions:
        cache.save(model, _portable(converter, keys[precision]), targets[precision])

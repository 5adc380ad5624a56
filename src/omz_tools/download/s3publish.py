"""``omz-cache publish`` and ``omz-cache verify``: fill a bucket from a folder of downloaded models
(for a fleet that cannot reach the origins), and check every object a bucket holds for the
selected models against the registry's size and hash.

Only verified bytes are published: each file of the output folder is checked (its record, else
its hash) against the registry first, and a file rewritten by regex_replace postprocessing is not
the registry's file, so it is skipped. Verifying streams each object and hashes it (stopping
once it has more bytes than the registry's size); nothing is trusted from the bucket's own metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from omz_tools.download.s3cache import ObjectAbsent, ReadBroke, S3Tier


@dataclass
class Tally:
    done: list = field(default_factory=list)  # model/file published or verified
    already: list = field(default_factory=list)  # already in the bucket (publish)
    absent: list = field(default_factory=list)  # not in the output folder (publish) / bucket (verify)
    bad: list = field(default_factory=list)  # one paragraph each
    down: Optional[str] = None  # the bucket could not be used at all

    @property
    def ok(self) -> bool:
        return not self.bad and self.down is None


def _files(models: list, output_dir: Path):
    """(task) for every file of the selected models (leaf models of composites too), deduplicated by hash."""
    from omz_tools.download.plan import plan

    seen: set = set()
    for job in plan(models, Path(output_dir), None, lambda model, model_file: []):
        for task in job.tasks:
            checksum = task.model_file.checksum
            if (checksum.algorithm, checksum.value) not in seen:
                seen.add((checksum.algorithm, checksum.value))
                yield task


def _tier(url: str, limits, num_attempts: int, tally: Tally) -> Optional[S3Tier]:
    tier = S3Tier(url, limits=limits, num_attempts=num_attempts)
    if not tier.usable():
        tally.down = tier.down
        return None
    return tier


def publish(models: list, output_dir: Path, url: str, *, limits, num_attempts: int = 3,
            say: Callable[[str], None] = lambda line: None) -> Tally:
    """Upload the selected models' verified files from ``output_dir`` to the bucket (not those there already)."""
    from omz_tools.download.verify import verified

    tally = Tally()
    tier = _tier(url, limits, num_attempts, tally)
    if tier is None:
        return tally
    for task in _files(models, output_dir):
        name = f"{task.model_name}/{task.name}"
        checksum = task.model_file.checksum
        if not verified(task.target, task.model_file, allow_postprocessed=False):
            tally.absent.append(name)
            continue
        found = tier.holds(checksum.algorithm, checksum.value, task.model_file.size)
        if found is None:
            tally.down = tier.down
            return tally
        if found:
            tally.already.append(name)
            continue
        try:
            tier.upload(task.target, checksum.algorithm, checksum.value)
        except Exception as exc:  # noqa: BLE001 - botocore's errors, described for the user
            tally.bad.append(f"{name}: {tier.describe_failure(exc, 'uploading')}")
            continue
        tally.done.append(name)
        say(f"Published {name} ({task.model_file.size} bytes)")
    return tally


def verify(models: list, url: str, *, limits, num_attempts: int = 3, remove: bool = False,
           say: Callable[[str], None] = lambda line: None) -> Tally:
    """Stream and hash every object the bucket holds for the selected models' files (an object
    longer than its file is damaged once one chunk past the size is read, not read to its end);
    ``remove`` deletes the objects that do not match (so runners fall through to the origin and
    refill them)."""
    tally = Tally()
    tier = _tier(url, limits, num_attempts, tally)
    if tier is None:
        return tally
    for task in _files(models, Path(".")):
        name = f"{task.model_name}/{task.name}"
        checksum, size = task.model_file.checksum, task.model_file.size
        key = tier.where.object_key(checksum.algorithm, checksum.value)
        try:
            read = tier.read_object(key, size, checksum.new_hasher(), retry=True)
        except ObjectAbsent:
            tally.absent.append(name)
            continue
        except ReadBroke as exc:  # a broken connection: not a verdict on the object
            from omz_tools.download.transport import describe_error
            tally.bad.append(f"{name}: reading s3://{tier.where.bucket}/{key} broke after {exc.got} bytes "
                             f"({describe_error(exc.cause)}); run the check again.")
            continue
        except Exception as exc:  # noqa: BLE001 - botocore's errors, described for the user
            tally.down = tier.describe_failure(exc, "reading an object")
            return tally
        if not read.overran and read.size == size and read.digest == checksum.value:
            tally.done.append(name)
            continue
        if read.overran:  # reading stopped there: the rest of a damaged object is not worth reading
            found = f"more than {size} bytes"
        else:
            found = f"{read.size} bytes" + (f" with {checksum.algorithm} {read.digest}" if read.size == size else "")
        action = "removed it" if remove else "left it (--remove_damaged removes it)"
        if remove:
            tier.client.delete_object(Bucket=tier.where.bucket, Key=key)
        tally.bad.append(f"{name}: the object s3://{tier.where.bucket}/{key} is damaged: expected {size} bytes "
                         f"with {checksum.algorithm} {checksum.value}, found {found}; {action}.")
        say(tally.bad[-1])
    return tally

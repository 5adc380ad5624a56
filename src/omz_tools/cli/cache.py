"""omz-cache: publish a folder of downloaded models to an S3 cache, and verify a bucket's objects."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from omz_tools.cli.common import (
    CONTEXT_SETTINGS, EXIT_FAILED, EXIT_OK, registry_errors, resolve_models, run_command, selection_options,
)


@click.group(context_settings=CONTEXT_SETTINGS)
def cli():
    """Shared model caches on S3-compatible storage (the standard AWS configuration: AWS_PROFILE,
    AWS_ENDPOINT_URL, the credentials chain). Needs the [s3] extra.

    Exit status: 0 ok, 1 some file failed or the bucket cannot be used, 2 usage error."""


def _bucket(ctx, param, value: str) -> str:
    from omz_tools.download.s3cache import S3Location, is_s3
    from omz_tools.download.sources import SourceConfigError
    if not is_s3(value):
        raise click.BadParameter(f"expected s3://BUCKET or s3://BUCKET/PREFIX, found {value!r}")
    try:
        return S3Location.parse(value, "BUCKET_URL").url
    except SourceConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _limits():
    from omz_tools.download.options import NetLimits
    return NetLimits.resolve()  # OMZ_TIMEOUT, OMZ_MIN_RATE as for the downloader


def _finish(tally, verb: str) -> None:
    for line in tally.bad:
        click.echo(line, err=True)
    if tally.down:
        click.echo(tally.down, err=True)
    click.echo(f"{verb}: {len(tally.done)}, already in the bucket: {len(tally.already)}, "
               f"not there: {len(tally.absent)}, failed: {len(tally.bad)}.")
    sys.exit(EXIT_OK if tally.ok else EXIT_FAILED)


@cli.command(context_settings=CONTEXT_SETTINGS)
@selection_options("publish")
@click.option("-o", "--output_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              show_default="current folder", metavar="DIR", help="the downloader's output folder to publish from")
@click.option("--num_attempts", type=click.IntRange(min=1), default=3, show_default=True, metavar="N")
@click.argument("bucket_url", callback=_bucket, metavar="s3://BUCKET/PREFIX")
@registry_errors
def publish(name, list_file, all_models, print_all, registries, output_dir, num_attempts, bucket_url):
    """Upload the selected models' verified files from DIR to the bucket, keyed by hash as
    `omz-downloader --cache_dir s3://BUCKET/PREFIX` reads them; files already there are skipped."""
    from omz_tools.download.s3publish import publish as run
    models = resolve_models(name, list_file, all_models, print_all, registries)
    _finish(run(models, output_dir, bucket_url, limits=_limits(), num_attempts=num_attempts,
                say=click.echo), "Published")


@cli.command(context_settings=CONTEXT_SETTINGS)
@selection_options("verify")
@click.option("--remove_damaged", is_flag=True, help="delete the objects that do not match the registry")
@click.option("--num_attempts", type=click.IntRange(min=1), default=3, show_default=True, metavar="N")
@click.argument("bucket_url", callback=_bucket, metavar="s3://BUCKET/PREFIX")
@registry_errors
def verify(name, list_file, all_models, print_all, registries, remove_damaged, num_attempts, bucket_url):
    """Read every object the bucket holds for the selected models' files and check its size and
    hash against the registry."""
    from omz_tools.download.s3publish import verify as run
    models = resolve_models(name, list_file, all_models, print_all, registries)
    _finish(run(models, bucket_url, limits=_limits(), num_attempts=num_attempts,
                remove=remove_damaged), "Verified")


def main() -> None:
    run_command(cli, "omz-cache", "Interrupted.")


if __name__ == "__main__":
    main()

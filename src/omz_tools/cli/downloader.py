"""omz-downloader / downloader.py (placeholder until the downloader issue: selection only)."""

import click

from omz_tools.cli.common import CONTEXT_SETTINGS, registry_errors, resolve_models, selection_options


@click.command(context_settings=CONTEXT_SETTINGS)
@selection_options("download")
@registry_errors
def cli(name, list_file, all_models, print_all, registries):
    """Download the selected models' files."""
    for model in resolve_models(name, list_file, all_models, print_all, registries):
        click.echo(model.name)


def main() -> None:
    cli(prog_name="omz-downloader")

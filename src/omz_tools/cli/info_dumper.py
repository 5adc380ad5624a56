"""omz-info-dumper / info_dumper.py: print what the registry knows about models, as JSON."""

from __future__ import annotations

import json
import sys

import click

from omz_tools.cli.common import CONTEXT_SETTINGS, registry_errors, resolve_models, selection_options
from omz_tools.registry.info import model_info


@click.command(context_settings=CONTEXT_SETTINGS)
@selection_options("dump info for")
@registry_errors
def cli(name, list_file, all_models, print_all, registries):
    """Print a JSON array describing the selected models.

    The keys and values are those of openvino-dev's omz_info_dumper, in the same order;
    "files" (names, sizes, hashes, sources) and "model_card" (the card's figures) follow.
    """
    models = resolve_models(name, list_file, all_models, print_all, registries)
    json.dump([model_info(model) for model in models], sys.stdout, indent=4)
    print()


def main() -> None:
    cli(prog_name="omz-info-dumper")


if __name__ == "__main__":
    main()

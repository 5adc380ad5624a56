"""Options and error handling shared by the commands."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable

import click

from omz_tools.errors import OmzError
from omz_tools.registry import Registry, RegistryError, resolve

# Exit codes, the same for every command (documented in the README).
EXIT_OK = 0
EXIT_FAILED = 1  # a model failed, no model matched, or the registry is broken
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def selection_options(verb: str) -> Callable:
    """--name/--list/--all/--print_all/--registry, as in Open Model Zoo's tools (plus --registry
    and --version)."""
    from omz_tools.version import __version__

    def decorate(command: Callable) -> Callable:
        options = [
            click.option("--name", metavar="PAT[,PAT...]",
                         help=f"{verb} only models whose names match at least one of these "
                              "comma-separated fnmatch patterns (case-sensitive)"),
            click.option("--list", "list_file", metavar="FILE.LST",
                         type=click.Path(exists=True, dir_okay=False, path_type=Path),
                         help=f"{verb} only models matching the patterns in FILE.LST "
                              "(first token of each line; '#' starts a comment)"),
            click.option("--all", "all_models", is_flag=True, help=f"{verb} all available models"),
            click.option("--print_all", is_flag=True, help="print the names of all available models and exit"),
            click.option("--registry", "registries", metavar="DIR", multiple=True,
                         type=click.Path(file_okay=False, path_type=Path),
                         help="an extra registry folder (repeatable); earlier ones shadow later ones by "
                              "model name, then $OMZ_REGISTRY (os.pathsep separated), then the built-in one"),
            click.version_option(__version__, "--version", message="%(prog)s (omz_tools) %(version)s",
                                 help="print the version and exit"),
        ]
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


def parse_precisions(ctx, param, value):
    """click callback for --precisions PREC[,PREC...]: a set of known precisions, or None."""
    if value is None:
        return None
    from omz_tools.registry.schema import KNOWN_PRECISIONS
    requested = {p for p in value.split(",") if p}
    unknown = requested - set(KNOWN_PRECISIONS)
    if unknown or not requested:
        raise click.BadParameter(f"unknown precision(s) {', '.join(sorted(unknown)) or '(none given)'}; "
                                 f"specify one or more of {','.join(sorted(KNOWN_PRECISIONS))}")
    return requested


def fail(message: str, code: int = EXIT_FAILED) -> None:
    from omz_tools.wording import printable
    click.echo(printable(message, keep="\n"), err=True)  # names from files never reach the terminal raw
    sys.exit(code)


def run_command(cli: click.Command, prog_name: str, interrupted: str, *, finish: Callable = sys.exit) -> None:
    """The process entry point of a command run outside click's standalone mode, which would turn
    Ctrl-C into "Aborted!" and exit 1: here Ctrl-C prints ``interrupted`` and exits 130, a usage
    error is click's message and exit 2. ``finish(code)`` ends the process when the command exits."""
    try:
        cli.main(prog_name=prog_name, standalone_mode=False)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            finish(exc.code or 0)
        raise
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo(interrupted, err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    finish(EXIT_OK)


def registry_errors(command: Callable) -> Callable:
    """Turn the project's errors (``OmzError``: registry problems, no match, bad option values, an
    unusable cache, no disk space...) into their one message and exit code, never a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RegistryError as exc:
            # One line per invalid model (a RegistryErrors holds several).
            fail("\n".join(f"Registry error: {line}" for line in str(exc).splitlines()))
        except OmzError as exc:
            if exc.exit_code == EXIT_USAGE:
                raise click.UsageError(str(exc)) from None
            fail(str(exc), exc.exit_code)
    return wrapper


def resolve_models(name, list_file, all_models, print_all, registries) -> list:
    """The selected models; handles --print_all (prints the names and exits 0)."""
    registry = Registry.from_options(registries)
    if print_all:
        for model_name in registry.names():
            click.echo(model_name)
        sys.exit(EXIT_OK)
    return resolve(name, list_file=list_file, all=all_models, registry=registry)


def one_model(models: list, verb: str):
    """The one plain model of a selection; a usage error for several, none or a composite."""
    if len(models) != 1:
        raise click.UsageError(f"{verb} one model at a time; the selection matches {len(models)}: "
                               f"{', '.join(m.name for m in models[:10])}")
    model = models[0]
    if model.is_composite:
        raise click.UsageError(f"{model.name} is a composite model; name one of its stages "
                               f"({', '.join(s.name for s in model.model_stages)})")
    return model


def run_on_one_model(selection: tuple, verb: str, run: Callable, *, failure: str, interrupted: str,
                     interrupted_early: str = "Interrupted.") -> object:
    """Select one model (``selection``: the arguments of resolve_models) and return ``run(model)``.
    The project's errors become "<failure>: <message>" with their exit code, said once; Ctrl-C says
    ``interrupted`` (``interrupted_early`` before ``run`` started) and exits 130."""
    try:
        model = one_model(resolve_models(*selection), verb)
    except KeyboardInterrupt:
        click.echo(interrupted_early, err=True)
        sys.exit(EXIT_INTERRUPTED)
    try:
        return run(model)
    except RegistryError:
        raise  # registry_errors prints it as every command does
    except OmzError as exc:
        fail(f"{failure}: {exc}", exc.exit_code)
    except KeyboardInterrupt:
        click.echo(interrupted, err=True)
        sys.exit(EXIT_INTERRUPTED)

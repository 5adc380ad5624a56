"""omz-accuracy-check / accuracy_check.py: top-1/top-5 of converted IR on the user's labelled images,
with the protocol of the model's accuracy-check.yml, compared with the model card."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from omz_tools.cli.common import (
    CONTEXT_SETTINGS, EXIT_FAILED, EXIT_OK, parse_precisions, registry_errors, run_on_one_model, selection_options,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@selection_options("evaluate")
@click.option("--dataset", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="folder of the images; the annotation's paths are relative to it")
@click.option("--annotation", type=click.Path(path_type=Path), required=True, metavar="FILE",
              help="one '<image path> <class index>' per line (the format of ImageNet's val15.txt)")
@click.option("-d", "--converted_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default="current folder", metavar="DIR",
              help="root of the IR: DIR/<subdirectory>/<PRECISION>/<name>.xml (omz-converter's -o)")
@click.option("--precisions", metavar="PREC[,PREC...]", callback=parse_precisions,
              help="evaluate these precisions (default: each of FP32, FP16, FP16-INT8 present in DIR)")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="only the first N images of the annotation (verdict: partial)")
@click.option("--labels", type=click.Path(path_type=Path), metavar="FILE",
              help="the class order of the annotation's indices (one '<class id> [name]' per line); refused "
                   "unless it is the model's order")
@click.option("--tolerance", type=click.FloatRange(min=0), metavar="POINTS",
              help="allowed distance from the reference figures in percentage points "
                   "(default 0.5; 1.0 for INT8 IR; an abs_threshold in accuracy-check.yml wins)")
@click.option("--device", default="CPU", show_default=True, help="OpenVINO device")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N",
              help="threads decoding and preprocessing images (default: cores, at most 4)")
@click.option("--batch", type=click.IntRange(min=1), metavar="N",
              help="images per inference where the model's batch dimension can be reshaped (default 4; "
                   "1: one at a time)")
@click.option("--progress_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a status line on a terminal, plain lines otherwise; json: one event per line")
@registry_errors
def cli(name, list_file, all_models, print_all, registries, dataset, annotation, converted_dir, precisions, limit,
        labels, tolerance, device, jobs, batch, progress_format):
    """Evaluate the IR of one model on labelled images as its accuracy-check.yml says (preprocessing,
    top-k accuracy metrics, reference figures) and compare with the model card.

    Exit status: 0 every precision within tolerance of the references (or --limit: partial), 1 a
    precision beyond tolerance, an unreadable image, or a problem with the data or the IR (one message),
    2 usage error, 130 interrupted.
    """
    def run(model):
        from omz_tools.accuracy import evaluate
        return evaluate(model, dataset=dataset, annotation=annotation, converted_dir=converted_dir,
                        precisions=sorted(precisions) if precisions else None, limit=limit, labels=labels,
                        jobs=jobs, tolerance=None if tolerance is None else tolerance / 100, device=device,
                        progress=progress_format, batch=batch)
    result = run_on_one_model((name, list_file, all_models, print_all, registries), "evaluate", run,
                              failure="Accuracy check failed",
                              interrupted="Interrupted: no figures were produced.")
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def main() -> None:
    cli(prog_name="omz-accuracy-check")


if __name__ == "__main__":
    main()

"""omz-quantizer / quantizer.py: FP16-INT8 IR with NNCF post-training quantization, calibrated on the
user's images through the model's accuracy-check.yml preprocessing."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from omz_tools.cli.common import CONTEXT_SETTINGS, EXIT_OK, registry_errors, run_on_one_model, selection_options


@click.command(context_settings=CONTEXT_SETTINGS)
@selection_options("quantize")
@click.option("--dataset", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="folder of calibration images (with --annotation: the annotation's images)")
@click.option("--annotation", type=click.Path(path_type=Path), metavar="FILE",
              help="'<image path> <class index>' per line; needed for --max_drop")
@click.option("-d", "--converted_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default="current folder", metavar="DIR", help="root of the FP32 IR (omz-converter's -o)")
@click.option("-o", "--output_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="root for <subdirectory>/FP16-INT8/<name>.xml|.bin (default: the -d folder)")
@click.option("--subset_size", type=click.IntRange(min=1), default=300, show_default=True, metavar="N",
              help="calibration images, spread evenly over the dataset")
@click.option("--preset", type=click.Choice(["performance", "mixed"]), default="performance", show_default=True,
              help="NNCF preset: symmetric (performance) or asymmetric activations (mixed)")
@click.option("--target_device", type=click.Choice(["ANY", "CPU", "GPU", "NPU", "CPU_SPR"]), default="CPU",
              show_default=True, help="device the INT8 IR is tuned for")
@click.option("--max_drop", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), metavar="FRACTION",
              help="accuracy-aware quantization: at most this top-1 drop (0.01 = 1 point) on the annotation's images")
@click.option("--validation_size", type=click.IntRange(min=1), default=1000, show_default=True, metavar="N",
              help="with --max_drop: validation images, spread evenly over the annotation")
@click.option("--dry_run", "--dry-run", is_flag=True, help="print what would be done, run nothing")
@click.option("--force", is_flag=True, help="quantize again even when the FP16-INT8 IR is up to date")
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N",
              help="threads decoding and preprocessing images (default: cores, at most 4)")
@click.option("--progress_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text lines, or one JSON event per line (NNCF's own output then goes to stderr)")
@registry_errors
def cli(name, list_file, all_models, print_all, registries, dataset, annotation, converted_dir, output_dir,
        subset_size, preset, target_device, max_drop, validation_size, dry_run, force, jobs, progress_format):
    """Quantize one model's FP32 IR to INT8 with NNCF and write DIR/<subdirectory>/FP16-INT8/<name>.xml
    (Open Model Zoo's layout). Only models marked 'quantizable: yes' in their model.yml; calibration
    images go through the preprocessing of the model's accuracy-check.yml. An up-to-date result is
    skipped; the folder is replaced atomically.

    Exit status: 0 written or up to date, 1 failure (one message; nothing written), 2 usage error,
    130 interrupted (the previous FP16-INT8 folder, if any, is left as it was).
    """
    def run(model):
        from omz_tools.quantize import quantize
        quantize(model, dataset=dataset, annotation=annotation, converted_dir=converted_dir, output_dir=output_dir,
                 subset_size=subset_size, preset=preset, target_device=target_device, max_drop=max_drop,
                 validation_size=validation_size, dry_run=dry_run, force=force, jobs=jobs, progress=progress_format)
    run_on_one_model((name, list_file, all_models, print_all, registries), "quantize", run,
                     failure="Quantization failed",
                     interrupted="Interrupted: nothing was written; a previous FP16-INT8 folder is as it was.",
                     interrupted_early="Interrupted: nothing was written.")
    sys.exit(EXIT_OK)


def main() -> None:
    cli(prog_name="omz-quantizer")


if __name__ == "__main__":
    main()

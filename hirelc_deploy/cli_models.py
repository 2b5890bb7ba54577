"""``hirelc models`` (the zoo) and ``hirelc inspect`` (what block discovery finds in a model: the pre-flight a user
runs first with their own model)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .cli_common import (MODEL_HELP, emit, input_shape_option, json_option, model_arg_option, model_ref,
                         norm_option, state)
from .models import MODELS


def models_cmd(as_json: bool = json_option()):
    """List the built-in models with their blocks and input shape.

    Example: hirelc models --json
    """
    if as_json:
        emit({name: {"input_shape": list(spec.input_shape), "num_classes": spec.num_classes,
                     "blocks": [b.name for b in spec.blocks()]} for name, spec in MODELS.items()})
        return
    for name, spec in MODELS.items():
        blocks = spec.blocks()
        print(f"{name:14s} input {'x'.join(map(str, spec.input_shape)):10s} {len(blocks):3d} blocks, "
              f"inner widths {sorted({b.full_width for b in blocks})}")


def inspect_cmd(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    model_args: list[str] = model_arg_option(),
    input_shape: Optional[str] = input_shape_option(),
    mean: Optional[str] = norm_option("--mean"),
    std: Optional[str] = norm_option("--std"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Also check that this state_dict "
                                           "checkpoint fits the model (loaded weights-only)."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Show the precisions and widths this "
                                         "target would profile for each block."),
    as_json: bool = json_option(),
):
    """Pre-flight: every block discovery finds in a model (kind, inner width, prunable/removable, precisions),
    and every layer it leaves alone with the reason.

    \b
    Example:
      hirelc inspect --model resnet56
      hirelc inspect --model my_nets.py:vgg --model-arg width=32 --input-shape 3x32x32 --weights vgg.pt
    """
    from .models import as_spec, load_weights
    from .targets import load_target
    from .targets.backends import BACKEND_PRECISIONS

    spec = as_spec(model_ref(model, model_args, input_shape, mean, std))
    found = spec.discovery
    tgt = load_target(target) if target else None
    precisions = list(tgt.precisions) if tgt else sorted(set().union(*BACKEND_PRECISIONS.values()))
    if weights is not None:
        load_weights(spec.make(), weights)
    units = []
    for unit in found.units:
        row = {**asdict(unit), "precisions": precisions}
        if tgt:
            row["widths"] = tgt.candidate_widths(unit.full_width, unit.prunable, unit.removable, unit.step)
        units.append(row)
    result = {"model": spec.name, "key": spec.key, "input_shape": list(spec.input_shape),
              "num_classes": spec.num_classes, "mean": list(spec.mean), "std": list(spec.std),
              "weights": str(weights) if weights else None, "target": tgt.name if tgt else None,
              "units": units, "left_alone": [asdict(a) for a in found.left_alone]}
    if as_json:
        emit(result)
        return
    if state["quiet"]:
        return
    # Block names and kinds never wrap (a piped output is 80 columns wide otherwise): notes fold instead.
    console = Console(width=max(Console().width, 140))
    table = Table(title=f"{spec.name}: {len(units)} blocks found (input {'x'.join(map(str, spec.input_shape))}, "
                        f"{spec.num_classes} classes)")
    for col in ("#", "block", "kind", "channels in>out", "inner width", "prunable", "removable", "precisions"):
        table.add_column(col, justify="right" if col in ("#", "inner width") else "left", no_wrap=True)
    table.add_column("notes", overflow="fold")
    for row in units:
        width = str(row["full_width"]) + (f" (steps of {row['step']})" if row["step"] > 1 else "")
        table.add_row(str(row["index"]), row["name"], row["kind"], f"{row['in_channels']}>{row['out_channels']}",
                      width, "yes" if row["prunable"] else "no", "yes" if row["removable"] else "no",
                      ",".join(row["precisions"]), "; ".join(row["notes"]))
    console.print(table)
    if found.left_alone:
        alone = Table(title="left alone (run as they are, FP32)")
        alone.add_column("layer")
        alone.add_column("reason")
        for item in found.left_alone:
            alone.add_row(", ".join(item.layers), item.reason)
        console.print(alone)
    if weights is not None:
        console.print(f"weights {weights}: fit the model")

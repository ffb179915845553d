"""`fpkit export`: a training checkpoint as a shippable model file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fpkit.cli.common import err_console
from fpkit.cli.dbopts import SetOption


def export(
    checkpoint: Annotated[
        Path, typer.Argument(help="Training checkpoint, e.g. runs/NAME/best.pt.", dir_okay=False, show_default=False)
    ],
    out: Annotated[Path, typer.Argument(help="Model file to write.", dir_okay=False, show_default=False)],
    overrides: SetOption = None,
) -> None:
    """Write the weights, config and provenance of CHECKPOINT to OUT, without the optimizer state.

    --set changes the stored config, e.g. a calibrated threshold: --set search.threshold=0.86.
    Settings the weights fix (audio, features, model) are refused.
    """
    from fpkit.train.export import export_model

    model_id = export_model(checkpoint, out, overrides)  # errors: one line, by the app's handler
    err_console.print(f"{out}: model {model_id}, {out.stat().st_size / 1e6:.1f} MB", soft_wrap=True)

"""`fpkit info`: the resolved config, the model's size and cost, and the device."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from fpkit.cli.common import ConfigOption, OverrideOption, err_console, fail, resolve_config


def info(
    config: ConfigOption = None,
    overrides: OverrideOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead.")] = False,
) -> None:
    """Print the resolved config, parameter count, GFLOP per segment and the device."""
    import torch
    import yaml

    from fpkit.device import DeviceError, resolve_device
    from fpkit.model import build_model, count_parameters, model_flops

    cfg = resolve_config(config, overrides)
    try:
        device = resolve_device(cfg.train.device)
    except DeviceError as err:
        fail(str(err))
    model = build_model(cfg)
    summary = {
        "config": cfg.to_dict(),
        "parameters": count_parameters(model),
        "gflop_per_segment": round(model_flops(model.dims, cfg) / 1e9, 4),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if as_json:
        print(json.dumps(summary))
        return
    print(yaml.safe_dump(summary["config"], sort_keys=False), end="")
    err_console.print(
        f"parameters: {summary['parameters']:,}   GFLOP/segment: {summary['gflop_per_segment']}   "
        f"device: {device}   torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

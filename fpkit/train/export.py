"""Turn a training checkpoint into a shippable model: weights, config and provenance only.

The optimizer state is dropped (a third of the file); overrides land in the stored config, which
is how a calibrated `search.threshold` travels with the model (`fpkit export`).
"""

from __future__ import annotations

from pathlib import Path

from fpkit.config import ConfigError, config_from_dict, run_overrides
from fpkit.model import CheckpointError, build_model, read_checkpoint, save_checkpoint, weights_id


def export_model(checkpoint: Path, out: Path, overrides: list[str] | None = None) -> str:
    """Write the model of `checkpoint` to `out`; returns its weights id.

    Raises `CheckpointError` or `ConfigError` in one line; an override of a setting the weights
    fix (audio, features, model) is refused.
    """
    payload = read_checkpoint(checkpoint)
    try:
        stored = config_from_dict(payload["config"], f"{checkpoint} (stored config)", strict=False)
    except ConfigError as err:
        raise CheckpointError(str(err)) from None
    config = run_overrides(stored, overrides)
    model = build_model(config)
    model.load_state_dict(payload["state_dict"])
    history = payload.get("history") or []
    # An exported model re-exported (to recalibrate its decision) keeps where its weights came from.
    provenance = payload.get("provenance") or {
        "source": checkpoint.name,
        "step": payload.get("step"),
        "last_epoch": history[-1] if history else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, config, provenance=provenance)
    return weights_id(model)

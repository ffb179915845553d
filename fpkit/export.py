"""Turn a training checkpoint into a shippable model: weights, config and provenance only.

    python -m fpkit.export runs/default/best.pt fpkit/weights/default.pt --set search.threshold=0.6

The optimizer state is dropped (a third of the file); `--set` overrides land in the stored
config, which is how a calibrated `search.threshold` travels with the model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fpkit.config import config_with_overrides
from fpkit.model import build_model, read_checkpoint, save_checkpoint, weights_id


def export_model(checkpoint: Path, out: Path, overrides: list[str]) -> str:
    """Write the model of `checkpoint` to `out`; returns its weights id."""
    payload = read_checkpoint(checkpoint)
    config = config_with_overrides(payload["config"], overrides, f"{checkpoint} (stored config)", strict=False)
    model = build_model(config)
    model.load_state_dict(payload["state_dict"])
    history = payload.get("history") or []
    provenance = {
        "source": checkpoint.name,
        "step": payload.get("step"),
        "last_epoch": history[-1] if history else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, config, provenance=provenance)
    return weights_id(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    model_id = export_model(args.checkpoint, args.out, args.overrides)
    print(f"{args.out}: model {model_id}, {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

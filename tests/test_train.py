from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import synth
import torch
import torch.multiprocessing as mp

from fpkit.config import Config, config_from_dict
from fpkit.model import CheckpointError, build_model, load_model, read_checkpoint
from fpkit.train.data import DataError
from fpkit.train.loop import TrainError, amp_dtype, resume_config, train
from fpkit.train.optim import Lamb, learning_rate


def run_config(tiny_config: Config, data: Path, out: Path, **train_overrides: object) -> Config:
    cfg = dataclasses.asdict(tiny_config)
    cfg["train"].update({"data": str(data), "out": str(out), "device": "cpu", **train_overrides})
    return config_from_dict(cfg)


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("songs")
    synth.write_songs(folder, 12, seconds=30.0)
    return folder


class StopAt:
    """Progress that interrupts training after a given step, as Ctrl-C would."""

    def __init__(self, stop: int) -> None:
        self.stop = stop
        self.phase, self.done = "", 0.0

    def start(self, phase: str, total: float | None) -> None:
        self.phase, self.done = phase, 0.0

    def advance(self, steps: float = 1, note: str = "") -> None:
        self.done += steps
        if self.phase == "training" and self.done == self.stop:
            raise KeyboardInterrupt


def test_short_run_lowers_loss_and_beats_untrained_model(tiny_config: Config, songs: Path, tmp_path: Path) -> None:
    cfg = run_config(tiny_config, songs, tmp_path / "run", epochs=4, steps_per_epoch=15, val_segments=60, lr=1e-3)
    # Time offsets only: with noise, reverb and masks, a model of a few thousand parameters
    # falls into the collapsed solution (loss ln(2n-1)) within 60 steps on synthetic songs.
    cfg.augment = dataclasses.replace(
        cfg.augment, offset_s=0.1, noise_prob=0.0, ir_prob=0.0, cutout_prob=0.0, band_mask_prob=0.0
    )
    cfg.train.warmup_steps = 20
    untrained = train(
        dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, epochs=1, steps_per_epoch=1, out=str(tmp_path / "untrained"))
        )
    )
    result = train(cfg)
    history = result.history
    assert result.step == 60 and len(history) == 4
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].val_loss < untrained.history[0].val_loss
    assert history[-1].top1[1] > untrained.history[0].top1[1]
    run = tmp_path / "run"
    for name in ("last.pt", "best.pt", "log.jsonl", "curves.png"):
        assert (run / name).exists(), name
    assert sorted(p.name for p in run.glob("epoch-*.pt")) == ["epoch-0002.pt", "epoch-0003.pt", "epoch-0004.pt"]
    assert load_model(run / "best.pt").model.dims.emb_dim == 32


@pytest.mark.parametrize(
    "memory, momentum",
    [(False, 0.0), (True, 0.0), (True, 0.9)],
    ids=["paper", "stream-framing-with-memory", "momentum-encoder"],
)
def test_resume_continues_at_saved_step_with_same_state(
    tiny_config: Config, songs: Path, tmp_path: Path, memory: bool, momentum: float
) -> None:
    if memory:  # the memory's fingerprints (and the momentum copy) are part of the state a resume restores
        tiny_config.features = dataclasses.replace(tiny_config.features, framing="stream", stft_hop=250)
        tiny_config.loss = dataclasses.replace(tiny_config.loss, memory=40, memory_start=3, momentum=momentum)
    straight = run_config(tiny_config, songs, tmp_path / "straight", epochs=2, steps_per_epoch=6)
    train(straight)

    broken = run_config(tiny_config, songs, tmp_path / "broken", epochs=2, steps_per_epoch=6)
    first = train(broken, progress=StopAt(9))
    assert first.interrupted and first.step == 9
    assert read_checkpoint(tmp_path / "broken/last.pt")["step"] == 9
    resumed = train(resume_config(tmp_path / "broken"), resume=True)
    assert resumed.step == 12 and not resumed.interrupted

    a = read_checkpoint(tmp_path / "straight/last.pt")
    b = read_checkpoint(tmp_path / "broken/last.pt")
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert [r["val_loss"] for r in a["history"]] == pytest.approx([r["val_loss"] for r in b["history"]], rel=1e-4)
    if momentum:
        for name, tensor in a["momentum_state"].items():
            torch.testing.assert_close(b["momentum_state"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_existing_run_is_not_overwritten_without_resume(tiny_config: Config, songs: Path, tmp_path: Path) -> None:
    cfg = run_config(tiny_config, songs, tmp_path / "run", epochs=1, steps_per_epoch=2)
    train(cfg)
    with pytest.raises(TrainError, match="already holds a run"):
        train(cfg)
    with pytest.raises(TrainError, match=r"no last\.pt"):
        resume_config(tmp_path / "elsewhere")


def test_bad_files_are_skipped_with_a_warning(
    tiny_config: Config, songs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for p in songs.glob("*.wav"):
        (data / p.name).write_bytes(p.read_bytes())
    (data / "corrupt.wav").write_bytes(os.urandom(3000))
    synth.write_audio(data / "short.wav", synth.make_song(0.8, 8000, 99), 8000)
    noise = tmp_path / "noise"
    synth.write_audio(noise / "hum.wav", synth.make_song(3.0, 8000, 98), 8000)
    (noise / "broken.wav").write_bytes(os.urandom(3000))
    cfg = run_config(tiny_config, data, tmp_path / "run", epochs=1, steps_per_epoch=3, val=None, noise=str(noise))
    with caplog.at_level(logging.WARNING, logger="fpkit"):
        result = train(cfg)
    assert result.step == 3
    text = caplog.text
    assert "corrupt.wav" in text and "not readable" in text
    assert "short.wav" in text and "too short" in text
    assert text.count("broken.wav") == 1  # the noise folder is read once, for training and validation alike


def test_empty_data_folder_is_a_clear_error(tiny_config: Config, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        train(run_config(tiny_config, tmp_path / "empty", tmp_path / "run"))


def test_init_starts_a_new_run_from_a_models_weights(
    tiny_config: Config, songs: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    # Adam moves every weight by about lr per step, whatever the gradient: at 1e-9 they stay put.
    tuned = train(
        run_config(
            tiny_config, songs, tmp_path / "tuned", epochs=1, steps_per_epoch=2, lr=1e-9, init=str(tiny_checkpoint)
        )
    )
    assert tuned.step == 2
    start = read_checkpoint(tiny_checkpoint)["state_dict"]
    after = read_checkpoint(tmp_path / "tuned/last.pt")["state_dict"]
    for name, tensor in start.items():
        torch.testing.assert_close(after[name], tensor, rtol=0, atol=1e-7, msg=name)
    torch.manual_seed(1)
    assert any(not torch.allclose(t, start[n]) for n, t in build_model(tiny_config).state_dict().items())


def test_batch_seed_draws_other_batches_and_holds_out_the_same_songs(
    tiny_config: Config, songs: Path, tmp_path: Path
) -> None:
    def first_epoch(name: str, batch_seed: int | None) -> tuple[float, float]:
        # At lr 1e-9 the weights stay put, so the losses tell the batches and the validation set apart.
        cfg = run_config(
            tiny_config, songs, tmp_path / name, epochs=1, steps_per_epoch=2, lr=1e-9, batch_seed=batch_seed
        )
        record = train(cfg).history[0]
        return record.train_loss, record.val_loss

    default, same, other = first_epoch("default", None), first_epoch("same", 0), first_epoch("other", 1)
    assert same == pytest.approx(default, rel=1e-6)
    assert other[1] == pytest.approx(default[1], rel=1e-6)
    assert abs(other[0] - default[0]) > 1e-4


def test_init_refuses_another_network_before_any_work(
    tiny_config: Config, songs: Path, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    wider = dataclasses.replace(tiny_config, model=dataclasses.replace(tiny_config.model, emb_dim=16))
    cfg = run_config(wider, songs, tmp_path / "run", init=str(tiny_checkpoint))
    with pytest.raises(TrainError, match=rf"model\.emb_dim: --init {tiny_checkpoint} was trained with 32, not 16"):
        train(cfg)
    with pytest.raises(CheckpointError, match="no such model file"):
        train(run_config(tiny_config, songs, tmp_path / "run", init=str(tmp_path / "missing.pt")))
    assert not (tmp_path / "run/cache").exists()  # refused before decoding a song


@pytest.mark.parametrize(
    "device, precision, native, expected",
    [
        ("cpu", "auto", True, torch.bfloat16),
        ("cpu", "auto", False, None),
        ("cpu", "float32", True, None),
        ("cpu", "bfloat16", False, torch.bfloat16),
        ("cuda", "auto", False, torch.float16),
        ("cuda", "auto", True, torch.bfloat16),
    ],
)
def test_training_precision_follows_the_hardware(
    monkeypatch: pytest.MonkeyPatch, device: str, precision: str, native: bool, expected: torch.dtype | None
) -> None:
    monkeypatch.setattr("fpkit.device.native_bfloat16", lambda _: native)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: native)
    assert amp_dtype(torch.device(device), precision) == expected


def test_a_bfloat16_run_trains(tiny_config: Config, songs: Path, tmp_path: Path) -> None:
    result = train(run_config(tiny_config, songs, tmp_path / "run", epochs=1, steps_per_epoch=3, precision="bfloat16"))
    assert result.step == 3 and np.isfinite(result.history[0].train_loss)


def test_learning_rate_warms_up_then_decays(tiny_config: Config) -> None:
    tc = dataclasses.replace(tiny_config.train, lr=1.0, warmup_steps=10, epochs=1, steps_per_epoch=110)
    rates = [learning_rate(s, tc) for s in range(110)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))
    assert rates[-1] < 0.01


def test_lamb_reduces_a_quadratic() -> None:
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    opt = Lamb([w], lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert w.norm() < 0.5


def _ddp_worker(rank: int, port: int, cfg: Config) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train(cfg)
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_with_two_gloo_processes(tiny_config: Config, songs: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = run_config(tiny_config, songs, tmp_path / "run", epochs=1, steps_per_epoch=4)
    mp.spawn(_ddp_worker, args=(port, cfg), nprocs=2, join=True)
    state = read_checkpoint(tmp_path / "run/last.pt")
    assert state["step"] == 4
    assert np.isfinite(state["history"][0]["train_loss"])

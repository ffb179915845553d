from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from synth import make_song

import fpkit.model as fpmodel
from fpkit.config import CONFIG_DIR, Config, config_from_dict, load_config
from fpkit.model import (
    CheckpointError,
    DivideAndEncode,
    Fingerprinter,
    ModelDims,
    SeparableConvBlock,
    build_model,
    centre_tap,
    count_parameters,
    load_model,
    save_checkpoint,
    weights_id,
)

PAPER_PARAMETERS = 16_939_008  # 1 s segments: 256 x 32 log-mel input
PAPER_PARAMETERS_2S = 19_224_576  # 2 s segments, as the reference TensorFlow code's test input


@cache
def config_named(name: str) -> Config:
    return load_config(CONFIG_DIR / f"{name}.yaml")


@cache
def model_named(name: str) -> Fingerprinter:
    torch.manual_seed(0)
    return build_model(config_named(name)).eval()


def songs(batch: int, model: Fingerprinter) -> torch.Tensor:
    """`batch` segment windows (B, window) of synthetic music for `model`'s front end."""
    window = model.frontend.framing.window
    return torch.from_numpy(np.stack([make_song(2.0, 8000, seed)[:window] for seed in range(batch)]))


def twin(model: Fingerprinter, config: Config, channels_last: bool) -> Fingerprinter:
    """The same weights in a model with the given memory format."""
    data = config.to_dict()
    data["model"]["channels_last"] = channels_last
    other = build_model(config_from_dict(data)).eval()
    other.load_state_dict(model.state_dict())
    return other


@pytest.mark.parametrize("name", ["paper", "default"])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape_and_unit_norm(name: str, batch: int) -> None:
    model = model_named(name)
    with torch.inference_mode():
        emb = model(songs(batch, model))
    assert emb.shape == (batch, 128)
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(batch))


def test_paper_parameter_count() -> None:
    assert count_parameters(model_named("paper")) == PAPER_PARAMETERS


def test_paper_parameter_count_with_2s_segments() -> None:
    # The reference code counts parameters on a 2 s input: the longer spectrogram widens the
    # layer norms of the first blocks, the only layers whose size depends on the input length.
    model = build_model(load_config(CONFIG_DIR / "paper.yaml", ["audio.segment_s=2.0"]))
    assert model.dims.n_frames == 63
    assert count_parameters(model) == PAPER_PARAMETERS_2S


def test_default_config_is_much_smaller_than_paper() -> None:
    assert count_parameters(model_named("default")) < PAPER_PARAMETERS / 4


def test_paper_encoder_reduces_to_one_cell() -> None:
    model = model_named("paper")
    with torch.inference_mode():
        features = model.encoder(model.spectrogram(songs(2, model)).unsqueeze(1))
    assert features.shape == (2, 1024, 1, 1)
    assert model.head.w1.shape == (128, 8, 32)  # 1024 features split into 128 slices of 8


def test_layer_norms_cover_channels_frequency_and_time() -> None:
    block = model_named("paper").encoder[0]
    assert isinstance(block, SeparableConvBlock)
    assert block.norm_time.normalized_shape == (128, 256, 16)  # time stride first
    assert block.norm_freq.normalized_shape == (128, 128, 16)  # then frequency stride


def test_dims_from_config() -> None:
    dims = ModelDims.from_config(Config())
    assert dims.n_mels == 256 and dims.n_frames == 32 and dims.emb_dim == 128
    assert dims.strides[4] == (2, 1)


@pytest.mark.parametrize("name", ["paper", "default"])
def test_channels_last_gives_the_same_outputs(name: str) -> None:
    model = model_named(name)
    config = config_named(name)
    wave = songs(2, model)
    models = {cl: twin(model, config, cl) for cl in (True, False)}
    with torch.inference_mode():
        outputs = {cl: m(wave) for cl, m in models.items()}
    torch.testing.assert_close(outputs[True], outputs[False], atol=1e-5, rtol=1e-4)
    assert weights_id(models[True]) == weights_id(models[False])  # the id ignores memory layout


@pytest.mark.parametrize(
    ("kernel", "stride", "shape"),
    [((1, 3), (1, 2), (4, 1)), ((1, 3), (1, 1), (1, 1)), ((3, 1), (2, 1), (1, 4)), ((3, 1), (1, 1), (1, 1))],
)
def test_centre_tap_equals_the_convolution_along_an_axis_of_extent_one(
    kernel: tuple[int, int], stride: tuple[int, int], shape: tuple[int, int]
) -> None:
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(6, 5, kernel, stride=stride, padding=(kernel[0] // 2, kernel[1] // 2))
    x = torch.randn(3, 6, *shape)
    torch.testing.assert_close(centre_tap(conv, x), conv(x))


@pytest.mark.parametrize("name", ["paper", "default"])
def test_fingerprinting_in_cache_sized_chunks_equals_one_pass(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_named(name)
    spec = model.spectrogram(songs(9, model))
    with torch.no_grad():
        whole = model.embed(spec)  # every chunk at least one segment: never split below a segment
        monkeypatch.setattr(model, "chunks", [2] * len(model.chunks))
        chunked = model.embed(spec)
    with torch.enable_grad():
        training = model.embed(spec)  # the training path runs the batch in one pass
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(training.detach(), whole, atol=1e-5, rtol=1e-4)


def test_divide_and_encode_equals_one_small_network_per_slice() -> None:
    torch.manual_seed(1)
    head = DivideAndEncode(in_features=24, emb_dim=4, units=5)
    head.b1.data.normal_()
    head.b2.data.normal_()
    x = torch.randn(3, 24)
    expected = torch.empty(3, 4)
    for d in range(4):
        part = x[:, d * 6 : (d + 1) * 6]  # consecutive slices of h/d features
        hidden = F.elu(part @ head.w1[d] + head.b1[d])
        expected[:, d] = hidden @ head.w2[d] + head.b2[d]
    torch.testing.assert_close(head(x), expected)


def test_divide_and_encode_needs_a_divisor() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        DivideAndEncode(in_features=10, emb_dim=4, units=2)


def test_fingerprints_ignore_gain(tiny_config: Config) -> None:
    model = build_model(tiny_config).eval()
    wave = songs(2, model)
    with torch.inference_mode():
        torch.testing.assert_close(model(wave * 0.2), model(wave), atol=1e-4, rtol=0)


def test_checkpoint_round_trip(tmp_path: Path, tiny_config: Config) -> None:
    torch.manual_seed(3)
    model = build_model(tiny_config).eval()
    path = tmp_path / "run" / "model.pt"
    path.parent.mkdir()
    save_checkpoint(path, model, tiny_config, step=7, best={"top1": 0.5})
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no .tmp left behind

    loaded = load_model(path)
    assert not loaded.model.training
    assert loaded.config == tiny_config
    assert loaded.path == str(path)
    assert loaded.extra == {"step": 7, "best": {"top1": 0.5}}
    assert loaded.model_id == weights_id(model)
    wave = songs(3, model)
    with torch.inference_mode():
        assert torch.equal(loaded.model(wave), model(wave))


def test_weights_id_follows_the_weights(tiny_config: Config) -> None:
    torch.manual_seed(0)
    a = build_model(tiny_config)
    torch.manual_seed(0)
    b = build_model(tiny_config)
    assert weights_id(a) == weights_id(b)
    assert len(weights_id(a)) == 16
    with torch.no_grad():
        b.head.b2[0] += 1e-3
    assert weights_id(a) != weights_id(b)


def test_non_checkpoint_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=f"^{path}: not an fpkit checkpoint"):
        load_model(path)


def test_foreign_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=f"^{path}: not an fpkit checkpoint"):
        load_model(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "missing.pt"
    with pytest.raises(CheckpointError, match=f"^{path}: no such model file"):
        load_model(path)


def test_checkpoint_whose_dims_disagree_with_its_config(tmp_path: Path, tiny_checkpoint: Path) -> None:
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["dims"]["n_mels"] = 32
    path = tmp_path / "tampered.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"^{path}: stored dims do not match"):
        load_model(path)


def test_checkpoint_with_a_broken_stored_config(tmp_path: Path, tiny_checkpoint: Path) -> None:
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["config"]["model"]["emb_dim"] = "wide"
    path = tmp_path / "tampered.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=rf"^{path} \(stored config\): model\.emb_dim: "):
        load_model(path)


def test_checkpoint_from_an_older_version_loads(
    tmp_path: Path, tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A key renamed since the checkpoint was written is ignored with a warning, not an error.
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["config"]["index"]["pq_bytes"] = 64
    path = tmp_path / "older.pt"
    torch.save(payload, path)
    with caplog.at_level(logging.WARNING, logger="fpkit.config"):
        loaded = load_model(path)
    assert "index.pq_bytes" in caplog.text
    assert loaded.model_id == load_model(tiny_checkpoint).model_id


def test_no_shipped_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "weights" / "default.pt"
    monkeypatch.setattr(fpmodel, "DEFAULT_WEIGHTS", missing)
    with pytest.raises(CheckpointError) as info:
        load_model(None)
    assert str(info.value).startswith(str(missing))
    assert "--model" in str(info.value)


def test_shipped_model_is_loaded_by_default(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    monkeypatch.setattr(fpmodel, "DEFAULT_WEIGHTS", tiny_checkpoint)
    loaded = load_model(None)
    assert loaded.path == str(tiny_checkpoint)
    assert loaded.model.dims.emb_dim == 32


def test_the_shipped_model_loads_and_fingerprints() -> None:
    loaded = load_model(None)
    assert loaded.path == str(fpmodel.DEFAULT_WEIGHTS)
    stored = fpmodel.read_checkpoint(fpmodel.DEFAULT_WEIGHTS)["state_dict"]
    weights = loaded.model.state_dict()
    assert stored.keys() == weights.keys() and all(torch.equal(stored[k], weights[k].cpu()) for k in stored)
    assert loaded.extra["provenance"]["source"]  # exported from a training run, saying which
    with torch.inference_mode():
        emb = loaded.model(songs(2, loaded.model))
    assert emb.shape == (2, loaded.config.model.emb_dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))


def test_activation_is_part_of_the_dims_and_the_output(tiny_config: Config, tmp_path: Path) -> None:
    relu_config = config_from_dict(
        {**tiny_config.to_dict(), "model": {**tiny_config.to_dict()["model"], "activation": "relu"}}
    )
    torch.manual_seed(0)
    relu = build_model(relu_config).eval()
    elu = build_model(tiny_config).eval()
    elu.load_state_dict(relu.state_dict())
    wave = songs(2, relu)
    with torch.inference_mode():
        assert not torch.allclose(relu(wave), elu(wave))
    save_checkpoint(tmp_path / "relu.pt", relu, relu_config)
    assert load_model(tmp_path / "relu.pt").model.dims.activation == "relu"

from __future__ import annotations

from pathlib import Path

import pytest

from fpkit.config import CONFIG_DIR, Config, ConfigError, config_from_dict, load_config

PAPER = CONFIG_DIR / "paper.yaml"
DEFAULT = CONFIG_DIR / "default.yaml"


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path | None = None, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_paper_config_is_the_dataclass_defaults() -> None:
    assert load_config(PAPER) == Config()
    assert load_config(None) == Config()


def test_default_config_loads() -> None:
    config = load_config(DEFAULT)
    assert config.features.n_mels == 128
    assert config.model.channels == [16, 32, 64, 64, 128, 128, 256, 512]
    assert config.train.batch_size == 960
    assert config.model.channels_last is False
    assert config.train.lr == pytest.approx(1e-3)


def test_segment_and_hop_in_samples() -> None:
    audio = load_config(PAPER).audio
    assert (audio.segment_samples, audio.hop_samples) == (8000, 4000)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == Config()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("model:\n  emb_dims: 64\n", "model.emb_dims"),
        ("modle:\n  emb_dim: 64\n", "modle"),
        ("train:\n  batch_size: 120\n  learning_rate: 0.1\n", "train.learning_rate"),
    ],
)
def test_unknown_key_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}: {key}: ")
    assert "unknown key" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("train:\n  batch_size: big\n", "train.batch_size"),
        ("train:\n  epochs: true\n", "train.epochs"),  # a bool is not an integer
        ("train:\n  epochs: 2.5\n", "train.epochs"),
        ("train:\n  lr: fast\n", "train.lr"),
        ("train:\n  data: 3\n", "train.data"),
        ("model:\n  channels_last: 1\n", "model.channels_last"),
        ("model:\n  channels: 128\n", "model.channels"),
        ("model:\n  channels: [8, eight, 16, 16, 32, 32, 64, 64]\n", "model.channels[1]"),
        ("loss:\n  kind: cosine\n", "loss.kind"),
        ("model: 3\n", "model"),
    ],
)
def test_wrong_type_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    assert config_error(path).startswith(f"{path}: {key}: ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("audio:\n  hop_s: 2.0\n", "audio.hop_s"),
        ("audio:\n  segment_s: 1.00001\n", "audio.segment_s"),  # not a whole number of samples
        ("audio:\n  sample_rate: 100\n", "audio.sample_rate"),
        ("features:\n  n_fft: 1000\n", "features.n_fft"),
        ("features:\n  f_max: 5000\n", "features.f_max"),  # above Nyquist of 8 kHz
        ("model:\n  emb_dim: 100\n", "model.emb_dim"),  # does not divide 1024
        ("model:\n  strides: [[2, 2]]\n", "model.strides"),
        ("model:\n  strides: [[2, 2], [2, 2], [2, 2], [2, 2], [2, 1], [2, 2], [2, 1], [3, 2]]\n", "model.strides"),
        ("train:\n  batch_size: 7\n", "train.batch_size"),
        ("train:\n  device: tpu\n", "train.device"),
        ("augment:\n  noise_prob: 1.5\n", "augment.noise_prob"),
        ("augment:\n  snr_db: [10, 0]\n", "augment.snr_db"),
        ("index:\n  exact_below: -1\n", "index.exact_below"),
        ("search:\n  threshold: 2\n", "search.threshold"),
        ("search:\n  reverb_delay_s: -0.1\n", "search.reverb_delay_s"),
        ("search:\n  monitor_level: 1.0\n", "search.monitor_level"),
    ],
)
def test_impossible_value_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    assert config_error(path).startswith(f"{path}: {key}: ")


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "audio:\n  sample_rate: 8000\nmodel: [unclosed\n")
    message = config_error(path)
    assert message.startswith(f"{path}: broken YAML")
    assert "line" in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- audio\n- model\n")
    assert config_error(path).startswith(f"{path}: ")


def test_missing_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert config_error(path).startswith(f"{path}: cannot read config")


def test_binary_file_instead_of_yaml(tmp_path: Path) -> None:
    path = tmp_path / "song.flac"
    path.write_bytes(bytes(range(256)) * 4)
    assert config_error(path).startswith(f"{path}: not a text file")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert config_error(tmp_path).startswith(f"{tmp_path}: cannot read config")


def test_overrides_apply_on_top_of_the_file() -> None:
    config = load_config(
        DEFAULT,
        [
            "train.batch_size=64",
            "features.f_min=100",  # an integer is accepted where a float is expected
            "model.channels_last=true",
            "train.optimizer=lamb",
            "train.data=/music/train",
            "index.factory=IVF1024,PQ64",
            "train.device=cuda:1",
            "augment.snr_db=[5, 15]",
        ],
    )
    assert config.train.batch_size == 64
    assert config.features.f_min == 100.0 and isinstance(config.features.f_min, float)
    assert config.model.channels_last is True
    assert config.train.optimizer == "lamb"
    assert config.train.data == "/music/train"
    assert config.index.factory == "IVF1024,PQ64"
    assert config.train.device == "cuda:1"
    assert config.augment.snr_db == [5.0, 15.0]
    # Keys the overrides did not touch keep the file's values.
    assert config.features.n_mels == 128
    assert config.train.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(("text", "value"), [("1e-3", 1e-3), ("1E-4", 1e-4), ("2.5e-4", 2.5e-4), ("1.0e-3", 1e-3)])
def test_exponent_notation_is_a_number(tmp_path: Path, text: str, value: float) -> None:
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; a learning rate is written that way more often than not.
    assert load_config(write(tmp_path, f"train:\n  lr: {text}\n", "lr.yaml")).train.lr == pytest.approx(value)
    assert load_config(None, [f"train.lr={text}"]).train.lr == pytest.approx(value)


def test_override_without_a_file() -> None:
    config = load_config(None, ["model.emb_dim=64"])
    assert config.model.emb_dim == 64
    assert config.model.channels == Config().model.channels


def test_override_later_wins() -> None:
    assert load_config(None, ["train.epochs=3", "train.epochs=5"]).train.epochs == 5


def test_empty_override_value_is_null() -> None:
    assert load_config(DEFAULT, ["train.data="]).train.data is None


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.batch_size=big", "train.batch_size"),
        ("train.epochs=1.5", "train.epochs"),
        ("train.batch_size=9", "train.batch_size"),
        ("model.emb_dims=64", "model.emb_dims"),
        ("nosection.key=1", "nosection"),
        ("train.optimizer=sgd", "train.optimizer"),
        ("audio.sample_rate.x=1", "audio.sample_rate"),
    ],
)
def test_overrides_are_type_checked(override: str, key: str) -> None:
    assert config_error(None, [override]).startswith(f"--set: {key}: ")


def test_override_error_with_a_file_names_set_not_the_file(tmp_path: Path) -> None:
    message = config_error(PAPER, ["train.batch_size=big"])
    assert message.startswith("--set: train.batch_size: ")  # the file does not hold the key
    assert "'big'" in message
    # A combination gone wrong through an override is the override's fault too.
    assert config_error(PAPER, ["model.emb_dim=7"]).startswith("--set: model.emb_dim: must divide")


def test_an_error_of_the_file_itself_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  emb_dim: 7\n")
    assert config_error(bad, ["train.lr=0.1"]).startswith(f"{bad}: model.emb_dim: must divide")
    assert load_config(bad, ["model.emb_dim=64"]).model.emb_dim == 64  # the override mends the file


@pytest.mark.parametrize("override", ["train.batch_size", "=3", "train.data=[unclosed"])
def test_malformed_override(override: str) -> None:
    assert config_error(None, [override]).startswith(f"--set {override}: ")


def test_override_into_a_value_is_refused() -> None:
    message = config_error(DEFAULT, ["audio.sample_rate.x=1"])
    assert message.startswith("--set audio.sample_rate.x=1: ")


def test_config_from_dict_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^run\.pt \(stored config\): model\.emb_dim: "):
        config_from_dict({"model": {"emb_dim": "x"}}, "run.pt (stored config)")


def test_to_dict_round_trips() -> None:
    config = load_config(DEFAULT)
    assert config_from_dict(config.to_dict()) == config


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)

"""Typed configuration: one dataclass per YAML section, strict loading, dotted overrides.

A config file is a YAML mapping whose top-level keys are the sections below. Every
section and key is optional (the dataclass defaults are the paper's settings), but an
unknown key, a value of the wrong type or an impossible value is a `ConfigError`
whose message names the file and the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import numpy as np
import yaml

from fpkit.errors import FpkitError

log = logging.getLogger(__name__)


class ConfigError(FpkitError):
    """A config file or override that cannot be used; the message names file and key."""


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but `1e-3` is a number as in YAML 1.2, not the string YAML 1.1 makes it."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass
class AudioConfig:
    sample_rate: int = 8000  # Hz, the model rate every file is resampled to
    segment_s: float = 1.0  # fingerprint window, seconds
    hop_s: float = 0.5  # distance between stored segments, seconds

    def validate(self) -> None:
        _require(self.sample_rate >= 1000, "sample_rate", "must be at least 1000 Hz")
        _require(self.segment_s > 0, "segment_s", "must be positive")
        _require(0 < self.hop_s <= self.segment_s, "hop_s", "must be in (0, segment_s]")
        _require(
            abs(self.segment_s * self.sample_rate - round(self.segment_s * self.sample_rate)) < 1e-6,
            "segment_s",
            "must be a whole number of samples at sample_rate",
        )
        _require(
            abs(self.hop_s * self.sample_rate - round(self.hop_s * self.sample_rate)) < 1e-6,
            "hop_s",
            "must be a whole number of samples at sample_rate",
        )

    @property
    def segment_samples(self) -> int:
        return round(self.segment_s * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sample_rate)


@dataclass
class FeaturesConfig:
    n_fft: int = 1024
    stft_hop: int = 256  # samples between STFT frames
    n_mels: int = 256
    f_min: float = 300.0  # Hz
    f_max: float = 4000.0  # Hz
    dynamic_range_db: float = 80.0  # log-mel values below (max - range) are clipped
    # "segment": each segment framed alone over zero padding (the paper); "stream": frames cut
    # from one framing of the whole signal, reading the audio around each segment (fpkit.features).
    framing: Literal["segment", "stream"] = "segment"

    def validate(self) -> None:
        _require(self.n_fft >= 16 and self.n_fft & (self.n_fft - 1) == 0, "n_fft", "must be a power of two >= 16")
        _require(0 < self.stft_hop <= self.n_fft, "stft_hop", "must be in (0, n_fft]")
        _require(self.n_mels >= 8, "n_mels", "must be at least 8")
        _require(0 <= self.f_min < self.f_max, "f_min", "must be >= 0 and below f_max")
        _require(self.dynamic_range_db > 0, "dynamic_range_db", "must be positive")


@dataclass
class ModelConfig:
    # Output channels of the 8 separable-conv blocks, and each block's [freq, time] stride.
    channels: list[int] = field(default_factory=lambda: [128, 128, 256, 256, 512, 512, 1024, 1024])
    strides: list[list[int]] = field(
        default_factory=lambda: [[2, 2], [2, 2], [2, 2], [2, 2], [2, 1], [2, 2], [2, 1], [2, 2]]
    )
    emb_dim: int = 128  # d, the fingerprint dimension
    proj_units: int = 32  # u, hidden units of each divide-and-encode branch
    channels_last: bool = True  # NHWC convolutions; faster on CPU and on CUDA tensor cores
    activation: Literal["elu", "relu"] = "elu"  # after every convolution; the paper's ELU costs 5x ReLU on CPUs

    def validate(self) -> None:
        _require(len(self.channels) >= 1, "channels", "needs at least one block")
        _require(all(c > 0 for c in self.channels), "channels", "must all be positive")
        _require(len(self.strides) == len(self.channels), "strides", "needs one [freq, time] pair per block")
        _require(
            all(len(s) == 2 and s[0] in (1, 2) and s[1] in (1, 2) for s in self.strides),
            "strides",
            "each block takes a [freq, time] pair of 1 or 2",
        )
        _require(self.emb_dim >= 2, "emb_dim", "must be at least 2")
        _require(self.proj_units >= 1, "proj_units", "must be positive")


@dataclass
class LossConfig:
    kind: Literal["ntxent", "triplet"] = "ntxent"
    tau: float = 0.05  # NT-Xent temperature
    margin: float = 0.5  # semi-hard triplet margin, squared L2 units
    # Cross-batch memory (NT-Xent only): fingerprints of this many past batch items serve as
    # extra negatives, from step `memory_start` on, when the network has stopped moving fast.
    memory: int = 0
    memory_start: int = 0
    # > 0: the memory holds fingerprints of a momentum copy of the network (MoCo), whose weights
    # move this close to their last value each step; 0: the network's own fingerprints.
    momentum: float = 0.0

    def validate(self) -> None:
        _require(self.tau > 0, "tau", "must be positive")
        _require(self.margin > 0, "margin", "must be positive")
        _require(self.memory >= 0, "memory", "must be >= 0")
        _require(self.memory_start >= 0, "memory_start", "must be >= 0")
        _require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")


@dataclass
class AugmentConfig:
    """Degradations applied to replicas in training and to synthetic queries in eval."""

    offset_s: float = 0.2  # replicas start up to this far from their anchor, seconds
    noise_prob: float = 1.0
    snr_db: list[float] = field(default_factory=lambda: [0.0, 10.0])
    ir_prob: float = 1.0
    ir_max_s: float = 0.5  # impulse responses are cut to this length, seconds
    gain_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])
    cutout_prob: float = 1.0  # one random time-frequency hole per spectrogram
    cutout_max_frac: float = 0.5  # largest hole side as a fraction of the axis
    band_mask_prob: float = 1.0  # one frequency band masked (SpecAugment horizontal)
    band_mask_max: int = 32  # mel bins
    # Training only: each anchor's music is played this much faster (pitch and tempo together, as
    # a turntable would), drawn per anchor, and its replica cut from the same played music, so
    # that every song also serves as new songs; [1, 1] plays it as it is.
    speed: list[float] = field(default_factory=lambda: [1.0, 1.0])
    # Training only: each replica's music passes through its own random smooth frequency
    # response (what a loudspeaker, a room and a microphone do to its timbre), with gains drawn
    # from +-eq_db at points spread over the octaves; 0 leaves it as it is.
    eq_db: float = 0.0
    # Training only: this share of the reverberated replicas gets a simulated room, drawn anew for
    # each (`fpkit.augment.simulate_rooms`), instead of one from the impulse-response bank; 0: the bank alone.
    simulated_rooms: float = 0.0
    # Training only: this share of the replicas ends in digital silence, its last 1 sample to
    # `tail_silence_max_s` seconds zeroed, as the shifted copies of a query under 1.5 s are
    # zero-padded to a whole segment (docs/database.md#search); 0: none.
    tail_silence: float = 0.0
    tail_silence_max_s: float = 0.375

    def validate(self) -> None:
        _require(0 <= self.offset_s < 1, "offset_s", "must be in [0, 1)")
        _require(len(self.speed) == 2 and 0 < self.speed[0] <= self.speed[1], "speed", "must be [low, high], > 0")
        for name in ("noise_prob", "ir_prob", "cutout_prob", "band_mask_prob", "simulated_rooms", "tail_silence"):
            _require(0 <= getattr(self, name) <= 1, name, "must be a probability in [0, 1]")
        _require(len(self.snr_db) == 2 and self.snr_db[0] <= self.snr_db[1], "snr_db", "must be [low, high]")
        _require(len(self.gain_db) == 2 and self.gain_db[0] <= self.gain_db[1], "gain_db", "must be [low, high]")
        _require(self.ir_max_s > 0, "ir_max_s", "must be positive")
        _require(0 < self.cutout_max_frac <= 1, "cutout_max_frac", "must be in (0, 1]")
        _require(self.band_mask_max >= 0, "band_mask_max", "must be >= 0")
        _require(self.eq_db >= 0, "eq_db", "must be >= 0")
        _require(0 < self.tail_silence_max_s < 1, "tail_silence_max_s", "must be in (0, 1) seconds")


# The network's arithmetic: "auto" is bfloat16 where the hardware computes it natively
# (CPUs with AVX512-BF16 or AMX, CUDA GPUs that support it), float32 elsewhere.
Precision = Literal["auto", "float32", "bfloat16"]


@dataclass
class TrainConfig:
    data: str | None = None  # folder of training music
    val: str | None = None  # folder of validation music; else split off `data` by song
    noise: str | None = None  # background noise folder; synthesised noise when unset
    ir: str | None = None  # impulse response folder; synthesised IRs when unset
    out: str | None = None  # run directory
    init: str | None = None  # a model whose weights a new run starts from (fine-tuning); else random
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    precision: Precision = "auto"  # the network's arithmetic in training steps; float16 on CUDA without bfloat16
    batch_size: int = 120  # N: N/2 anchors and their N/2 replicas
    epochs: int = 100
    steps_per_epoch: int = 500
    optimizer: Literal["adam", "lamb"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    val_fraction: float = 0.1  # songs held out when `val` is unset
    val_segments: int = 500  # segments used by the per-epoch mini search
    workers: int = 2  # DataLoader worker processes
    keep_last: int = 3  # epoch checkpoints kept besides the best
    checkpoint_minutes: float = 5.0  # also save last.pt this often within an epoch
    log_every: int = 10  # steps between training-loss lines in log.jsonl
    seed: int = 0
    # The batches' own seed (None: `seed`): a fine-tune can draw batches its start never saw while
    # `seed` keeps the same songs held out for validation.
    batch_seed: int | None = None

    def validate(self) -> None:
        _require(self.batch_size >= 4 and self.batch_size % 2 == 0, "batch_size", "must be an even number >= 4")
        _require(self.epochs >= 1, "epochs", "must be at least 1")
        _require(self.steps_per_epoch >= 1, "steps_per_epoch", "must be at least 1")
        _require(self.lr > 0, "lr", "must be positive")
        _require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _require(0 < self.val_fraction < 1, "val_fraction", "must be in (0, 1)")
        _require(self.val_segments >= 10, "val_segments", "must be at least 10")
        _require(self.workers >= 0, "workers", "must be >= 0")
        _require(self.keep_last >= 1, "keep_last", "must be at least 1")
        _require(self.checkpoint_minutes > 0, "checkpoint_minutes", "must be positive")
        _require(self.log_every >= 1, "log_every", "must be at least 1")
        _require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "device",
            "must be auto, cpu, cuda or cuda:N",
        )


# How a database keeps the fingerprints that re-scoring reads (fpkit.db.rescore).
RescoreMode = Literal["float16", "opq32"]
SubhopPooling = Literal["max", "mean"]


@dataclass
class InferenceConfig:
    """How the network is run while fingerprinting (index, generate, search, monitor, eval): a run's choice."""

    batch_size: int = 256  # segments per model call
    precision: Precision = "auto"

    def validate(self) -> None:
        _require(self.batch_size >= 1, "batch_size", "must be positive")


@dataclass
class IndexConfig:
    # FAISS factory string, or "auto": exact search for small databases, IVF-PQ beyond.
    factory: str = "auto"
    exact_below: int = 20000  # vectors; fewer than this are searched exactly
    pq_m: int = 64  # sub-quantizers of the "auto" IVF-PQ (4 bits each: pq_m / 2 bytes per vector)
    on_disk: bool = False  # inverted lists in a memory-mapped file, for databases beyond memory
    # Stored fingerprints: "float16" as they are (256 bytes each), "opq32" as 32 bytes of
    # optimized product-quantizer codes; a database that holds codes keeps them.
    rescore: RescoreMode = "float16"

    def validate(self) -> None:
        _require(self.factory.strip() != "", "factory", "must be a FAISS factory string or 'auto'")
        _require(self.exact_below >= 0, "exact_below", "must be >= 0")
        _require(self.pq_m in (8, 16, 32, 64, 128), "pq_m", "must be one of 8, 16, 32, 64, 128")


@dataclass
class SearchConfig:
    top_k: int = 5  # candidates reported per query
    segment_k: int = 20  # FAISS neighbours taken per query segment
    max_candidates: int = 64  # alignments re-scored per query copy, those with the most hit similarity
    nprobe: int = 32  # IVF lists visited per query segment
    subhop_shifts: int = 4  # query fingerprinted at this many shifts within one hop
    # How the copies score a placement: "max", each copy its own placements and the best copy
    # wins (for nets that tolerate no misalignment); "mean", every copy every placement,
    # averaged (for nets trained with an offset margin: fewer chance matches, finer offsets).
    subhop_pooling: SubhopPooling = "max"
    # Re-place each reported candidate where the copies' mean similarity peaks (among the
    # placements proposed in its song and those within a hop), keeping its song and score:
    # `mean`'s finer offsets with `max`'s scores, for nets trained with an offset margin.
    refine_offsets: bool = False
    threshold: float = 0.5  # best score below this is reported as no match
    # Each candidate's score is its mean cosine plus this times its lead over the best other
    # song (negative for all but the best): a match must stand out, not only be similar.
    lead_weight: float = 0.0
    # [[seconds, threshold], ...]: when given, the threshold for a query of d seconds is
    # interpolated linearly in d between these points (clamped at the ends) instead of `threshold`.
    threshold_by_length: list[list[float]] = field(default_factory=list)
    # Seconds added to every offset `search` reports. A room delays a recording's energy by its
    # impulse response's energy centroid (tens to hundreds of ms) and the network aligns on the
    # energy, so a reverberant query is placed that much too early; calibrated on training-side
    # rooms (docs/results.md). 0 for dry audio: digital copies, line feeds. `monitor` keeps 0.
    reverb_delay_s: float = 0.0
    # `monitor`'s best path: a segment on a song's alignment earns its similarity minus this,
    # no song earns 0. A model's own setting: between how it hears quiet passages of a stored
    # song under noise and how it hears unknown audio (docs/monitor.md).
    monitor_level: float = 0.55

    def validate(self) -> None:
        _require(self.top_k >= 1, "top_k", "must be positive")
        _require(-1 < self.monitor_level < 1, "monitor_level", "must be a cosine similarity in (-1, 1)")
        _require(0 <= self.reverb_delay_s < 1, "reverb_delay_s", "must be in [0, 1) seconds")
        _require(self.segment_k >= 1, "segment_k", "must be positive")
        _require(self.max_candidates >= 1, "max_candidates", "must be positive")
        _require(self.nprobe >= 1, "nprobe", "must be positive")
        _require(self.subhop_shifts >= 1, "subhop_shifts", "must be positive")
        _require(self.lead_weight >= 0, "lead_weight", "must be >= 0")
        top = 1 + 2 * self.lead_weight  # the highest score: cosine 1, leading a song at -1
        _require(-top <= self.threshold <= top, "threshold", f"must be a score in [-{top:g}, {top:g}]")
        points = self.threshold_by_length
        _require(
            all(len(p) == 2 and p[0] > 0 and -top <= p[1] <= top for p in points)
            and all(a[0] < b[0] for a, b in itertools.pairwise(points)),
            "threshold_by_length",
            "must be [seconds, threshold] pairs with increasing seconds",
        )

    def threshold_for(self, duration_s: float) -> float:
        """The match threshold for a query of `duration_s` seconds."""
        if not self.threshold_by_length:
            return self.threshold
        seconds, limits = zip(*self.threshold_by_length, strict=True)
        return float(np.interp(duration_s, seconds, limits))


@dataclass
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    def validate(self) -> None:
        for f in fields(self):
            try:
                getattr(self, f.name).validate()
            except _Invalid as err:
                raise _Invalid(f"{f.name}.{err.key}", err.problem) from None
        _require(
            self.features.f_max <= self.audio.sample_rate / 2,
            "features.f_max",
            "must not exceed half of audio.sample_rate",
        )
        if self.features.framing == "stream":
            hop = self.features.stft_hop
            _require(
                self.audio.segment_samples % hop == 0 and self.audio.hop_samples % hop == 0,
                "features.stft_hop",
                "must divide the segment and hop lengths in samples when framing is stream",
            )
        _require(
            self.model.emb_dim <= self.model.channels[-1] and self.model.channels[-1] % self.model.emb_dim == 0,
            "model.emb_dim",
            "must divide the last entry of model.channels",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (defaults when `path` is None) and apply `section.key=value` overrides."""
    source = str(path) if path is not None else "<defaults>"
    data = _read_yaml(Path(path)) if path is not None else {}
    return config_with_overrides(data, overrides, source)


def config_with_overrides(
    data: dict[str, Any], overrides: list[str] | None, source: str, strict: bool = True
) -> Config:
    """`config_from_dict` of a copy of `data` with dotted `section.key=value` overrides applied.

    An error names `--set` when an override is at fault (its key, or `data` is fine alone), else `source`.
    """
    base = _current_keys(data, source, warn=strict)
    changed = copy.deepcopy(base)
    keys = set()
    for item in overrides or []:
        apply_override(changed, item)
        key = item.partition("=")[0].strip()
        keys.add(RENAMED.get(key, key))
    changed = _current_keys(changed, "--set", warn=True)
    try:
        return _validated(changed, strict)
    except _Invalid as err:
        blame = source
        if keys and (err.key in keys or _is_valid(base, strict)):
            blame = "--set"
        raise ConfigError(f"{blame}: {err.key}: {err.problem}") from None


# Keys that moved, old -> new: configs, checkpoints and databases made before keep loading.
RENAMED = {"index.batch_size": "inference.batch_size", "index.precision": "inference.precision"}


def _current_keys(data: dict[str, Any], source: str, warn: bool) -> dict[str, Any]:
    """A copy of `data` with each old key of `RENAMED` moved to its new place, where its value wins.

    `warn` says so for a config a person wrote; a checkpoint's stored config is moved silently.
    """
    data = copy.deepcopy(data)
    if not isinstance(data, dict):
        return data  # validation names it
    for old, new in RENAMED.items():
        old_section, old_key = old.split(".")
        new_section, new_key = new.split(".")
        section, target = data.get(old_section), data.setdefault(new_section, {})
        if not (isinstance(section, dict) and old_key in section and isinstance(target, dict)):
            continue  # nothing to move, or a section that is not a mapping, which validation names
        target[new_key] = section.pop(old_key)
        if warn:
            log.warning("%s: %s is now called %s", source, old, new)
    return data


# The sections a model's weights were trained with: its fingerprints mean nothing under other values.
FIXED_BY_MODEL = ("audio", "features", "model")


def run_overrides(config: Config, overrides: list[str] | None) -> Config:
    """A model's `config` with the `--set` overrides a run may make; the sections it fixes are refused."""
    changed = config_with_overrides(config.to_dict(), overrides, "--set")
    for item in overrides or []:
        key = item.partition("=")[0].strip()
        section, _, name = key.partition(".")
        if section in FIXED_BY_MODEL:
            value = getattr(getattr(config, section), name)
            raise ConfigError(
                f"--set {key}: fixed by the model ({key}={value}); "
                f"its {', '.join(FIXED_BY_MODEL)} settings change only with another model"
            )
    return changed


def config_from_dict(data: dict[str, Any], source: str = "<dict>", strict: bool = True) -> Config:
    """Build and validate a `Config` from a nested mapping; `source` names it in errors.

    Keys that moved (`RENAMED`) are read at their new place. `strict=False` drops unknown keys
    with a warning instead of failing: for configs stored in checkpoints by an older fpkit, whose
    keys may since have been removed.
    """
    try:
        return _validated(_current_keys(data, source, warn=strict), strict)
    except _Invalid as err:
        raise ConfigError(f"{source}: {err.key}: {err.problem}") from None


def _validated(data: dict[str, Any], strict: bool) -> Config:
    config = _build(Config, data, "", strict)
    config.validate()
    return config


def _is_valid(data: dict[str, Any], strict: bool) -> bool:
    try:
        _validated(data, strict)
    except _Invalid:
        return False
    return True


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    try:
        data = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: broken YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return data


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set `section.key=value` (value parsed as YAML) in a nested config mapping."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item}: expected section.key=value")
    parts = key.strip().split(".")
    try:
        value = yaml.load(raw, Loader=_YamlLoader) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {item}: value is not valid YAML") from None
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item}: {part} is not a section")
        node = child
    node[parts[-1]] = value


class _Invalid(Exception):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise _Invalid(key, problem)


_T = typing.TypeVar("_T")


def _build(cls: type[_T], data: Any, prefix: str, strict: bool = True) -> _T:
    if not isinstance(data, dict):
        raise _Invalid(prefix.rstrip(".") or "<top>", "must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            if strict:
                raise _Invalid(f"{prefix}{key}", "unknown key")
            log.warning("ignoring stored config key %s%s, unknown to this version", prefix, key)
    kwargs: dict[str, Any] = {}
    for name in known & set(data):
        hint = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, data[name], f"{key}.", strict)  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(data[name], hint, key)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a type hint; ints are accepted where floats are expected."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except _Invalid:
                continue
        raise _Invalid(key, f"expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(hint):
            raise _Invalid(key, f"must be one of {', '.join(map(str, get_args(hint)))}, got {value!r}")
        return value
    if origin is list:
        (item_hint,) = get_args(hint)
        if not isinstance(value, list):
            raise _Invalid(key, f"expected a list, got {value!r}")
        return [_coerce(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise _Invalid(key, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(key, f"expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(key, f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Invalid(key, f"expected a string, got {value!r}")
        return value
    raise _Invalid(key, f"unsupported type {hint}")  # pragma: no cover - guards new fields


def _describe(hint: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in get_args(hint) if a is not type(None)]
    return " or ".join(names) + (" or null" if type(None) in get_args(hint) else "")

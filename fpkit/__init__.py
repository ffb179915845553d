"""fpkit: neural audio fingerprinting (Chang et al., ICASSP 2021) as a command-line toolkit."""

from fpkit.audio import load_audio
from fpkit.config import Config, load_config
from fpkit.model import Fingerprinter, build_model, load_model

__version__ = "0.1.0"

__all__ = ["Config", "Fingerprinter", "__version__", "build_model", "load_audio", "load_config", "load_model"]

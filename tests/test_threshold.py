from __future__ import annotations

import pytest

from fpkit.config import Config, ConfigError, config_from_dict


def test_threshold_by_length_interpolates_and_clamps(tiny_config: Config) -> None:
    data = tiny_config.to_dict()
    data["search"]["threshold_by_length"] = [[1.0, 0.9], [3.0, 0.8]]
    search = config_from_dict(data).search
    assert search.threshold_for(0.5) == 0.9 and search.threshold_for(10.0) == 0.8
    assert search.threshold_for(2.0) == pytest.approx(0.85)
    data["search"]["threshold_by_length"] = [[3.0, 0.8], [1.0, 0.9]]
    with pytest.raises(ConfigError, match="threshold_by_length"):
        config_from_dict(data)

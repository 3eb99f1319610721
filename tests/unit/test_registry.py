"""Registry lookups, aliases and did-you-mean errors."""

from __future__ import annotations

import pytest

from autounet.errors import ConfigError
from autounet.registry import Registry


def test_register_get_alias_and_suggestion() -> None:
    reg: Registry[int] = Registry("normalizer")
    reg.add("zscore", 1, aliases=("ZScoreNormalization",))
    reg.add("ct", 2)
    assert reg.get("zscore") == 1
    assert reg.get("ZScoreNormalization") == 1
    assert reg.canonical("ZScoreNormalization") == "zscore"
    assert "ct" in reg and "mri" not in reg
    assert reg.names() == ["ct", "zscore"]
    with pytest.raises(ConfigError, match="Did you mean 'zscore'"):
        reg.get("zscor")
    with pytest.raises(ValueError, match="twice"):
        reg.add("ct", 3)

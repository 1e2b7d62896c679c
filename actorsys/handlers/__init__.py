"""Pluggable job handlers: the interface and the loader."""

from __future__ import annotations

import importlib
from typing import cast

from actorsys.errors import HandlerError
from actorsys.handlers.api import HandlerFactory

DEFAULT_HANDLER = "actorsys.handlers.iot_parquet:IotParquetHandler"


def load_handler_factory(reference: str) -> HandlerFactory:
    """Resolve ``"package.module:callable"`` to the handler factory."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise HandlerError(f"handler {reference!r} must look like 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerError(f"handler {reference!r}: cannot import {module_name!r}: {exc}") from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise HandlerError(
            f"handler {reference!r}: {attribute!r} is not a callable in {module_name}"
        )
    # Found by name, so untyped: being a handler factory is the plugin's contract.
    return cast(HandlerFactory, factory)

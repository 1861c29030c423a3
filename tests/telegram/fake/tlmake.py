"""Build Telethon TL objects across layers: required fields nobody cares about get
neutral values, so the same fake works with every Telethon version in the range."""

from __future__ import annotations

import datetime
import inspect
import typing
from typing import Any


def make(cls: type, **values: Any) -> Any:
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in values or param.default is not inspect.Parameter.empty:
            continue
        values[name] = _neutral(param.annotation, cls, name)
    return cls(**values)


def _neutral(annotation: Any, cls: type, name: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        # Telethon marks every date Optional; a required one still needs a value.
        return now() if datetime.datetime in typing.get_args(annotation) else None
    if origin in (list, typing.List):
        return []
    if annotation is int:
        return 0
    if annotation is float:
        return 0.0
    if annotation is str:
        return ""
    if annotation is bytes:
        return b""
    if annotation is bool:
        return False
    if annotation is datetime.datetime:
        return now()
    raise TypeError(f"{cls.__name__}.{name} ({annotation}) needs a value")


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc).replace(microsecond=0)

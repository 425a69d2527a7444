"""The architecture registry: a leaf that architectures add themselves to (as timm's `register_model`).

Each architecture module decorates its class with `@register_arch(name, ...)`; importing the
`unifiedgender.models` package imports every architecture module, so `list_archs()` (like timm's
`list_models`) and `get_arch(name)` see all of them. Every other list of architecture names is derived from here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unifiedgender.errors import UserError


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture."""

    name: str
    cls: type[Any]
    uses_flag: bool = False
    default_backbone: str | None = None
    builtin_backbone: str | None = None  # set for architectures that bring their own (e.g. simple_cnn)

    def kwarg_names(self) -> list[str]:
        """Keyword arguments the architecture accepts (besides backbone, num_features and flag)."""
        skip = {"self", "backbone", "num_features", "flag"}
        return [p for p in inspect.signature(self.cls.__init__).parameters if p not in skip]


ARCHITECTURES: dict[str, ArchSpec] = {}


def register_arch(
    name: str, *, uses_flag: bool = False, default_backbone: str | None = None, builtin_backbone: str | None = None
) -> Callable[[type[Any]], type[Any]]:
    """Class decorator adding an architecture under `name` (a second class under a taken name is an error)."""

    def add(cls: type[Any]) -> type[Any]:
        if name in ARCHITECTURES and ARCHITECTURES[name].cls is not cls:
            raise ValueError(f"architecture '{name}' is registered twice ({ARCHITECTURES[name].cls.__name__}, {cls.__name__})")
        ARCHITECTURES[name] = ArchSpec(name, cls, uses_flag, default_backbone, builtin_backbone)
        return cls

    return add


def list_archs() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(ARCHITECTURES)


def get_arch(name: str) -> ArchSpec:
    """The spec of architecture `name`; UserError listing the valid names otherwise."""
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{name}'; use one of {', '.join(list_archs())}")
    return ARCHITECTURES[name]

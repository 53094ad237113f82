"""What several commands share: model lists and the few arguments they spell the same way."""

from __future__ import annotations

from ..config import MODES
from ..models import SPECS


def model_list(text: str | None) -> tuple[str, ...]:
    """``"all"`` (or nothing) -> every declared model that can be served or run here (not those that
    only a server has); else the comma-separated names."""
    if not text or text == "all":
        return SPECS.servable()
    return tuple(m.strip() for m in text.split(",") if m.strip())


def add_models(parser, default: str = "all") -> None:
    parser.add_argument("--models", default=default, help=f"comma-separated model names, or all (default {default})")


def add_mode(parser, default: str, help_text: str = "") -> None:
    parser.add_argument("--mode", default=default, choices=MODES, help=help_text or None)

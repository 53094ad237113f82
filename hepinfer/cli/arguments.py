"""The arguments several commands spell the same way, and their model lists."""

from __future__ import annotations

from hepinfer.config import MODES
from hepinfer.models import SPECS


def model_list(text: str | None) -> tuple[str, ...]:
    """``"all"`` (or nothing) -> every declared model that can be served or run here (not those that
    only a server has); else the comma-separated names."""
    if not text or text == "all":
        return SPECS.servable()
    return tuple(m.strip() for m in text.split(",") if m.strip())


def add_models(parser, default: str = "all") -> None:
    parser.add_argument("--models", default=default, help=f"comma-separated model names, or all (default {default})")


def add_engine_options(parser) -> None:
    """``--engine --device --precision --compiled``: what runs the networks in the embedded server."""
    from hepinfer.serving.repository import PRECISIONS, SERVING_ENGINES

    parser.add_argument(
        "--engine",
        choices=SERVING_ENGINES,
        default="default",
        help="embedded: torch runs the networks' exported programs with torch (the BDT keeps xgboost); "
        "null answers zeros at once (a benchmark ceiling)",
    )
    parser.add_argument("--device", default="cpu", help="engine torch: cpu or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="engine torch: fp32, fp16 or bf16")
    parser.add_argument("--compiled", action="store_true", help="engine torch: torch.compile, warmed up at load")


def add_mode(parser, default: str, help_text: str = "") -> None:
    parser.add_argument("--mode", default=default, choices=MODES, help=help_text or None)


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_bytes(text: str) -> int:
    """``"40GB"``, ``"512MiB"``, ``"1e9"`` -> bytes; ConfigError naming the value otherwise."""
    import re

    from hepinfer.errors import ConfigError

    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _UNITS:
        raise ConfigError(f"memory size {text!r}: expected a number with a unit such as 40GB or 512MiB")
    try:
        value = float(m.group(1)) * _UNITS[unit]
    except ValueError:
        raise ConfigError(f"memory size {text!r}: {m.group(1)!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"memory size {text!r} must be positive")
    return int(value)

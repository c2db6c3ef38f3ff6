"""config.example.yaml stays in step with the settings the code knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from scheduler.config import Settings, settings_from_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def _paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        ann: Any = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _paths(ann, f"{prefix}{name}.")
        elif name != "accounts":
            out.add(prefix + name)
    return out


def _keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for k, v in data.items():
        if isinstance(v, dict):
            out |= _keys(v, f"{prefix}{k}.")
        elif k != "accounts":
            out.add(prefix + k)
    return out


def test_example_config_is_valid_and_shows_every_setting() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    settings_from_dict(data, str(EXAMPLE))
    assert _paths(Settings) == _keys(data)

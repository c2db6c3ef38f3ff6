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


# Where the example deliberately shows a production value instead of the default, its line
# says "default: …" (the test below checks that the comment is there).
SHOWN_INSTEAD_OF_DEFAULT = {"database.url", "queue.inbox_dir", "webhooks.verify_token_env",
                            "webhooks.app_secret_env"}


def _values(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(_values(v, f"{prefix}{k}."))
        elif k != "accounts":
            out[prefix + k] = v
    return out


def test_example_config_shows_the_defaults() -> None:
    text = EXAMPLE.read_text()
    shown = _values(yaml.safe_load(text))
    defaults = _values(Settings().model_dump(mode="json"))
    differ = {k for k in shown if shown[k] != defaults[k]}
    assert differ == SHOWN_INSTEAD_OF_DEFAULT, {k: (shown[k], defaults[k]) for k in differ}
    for key in SHOWN_INSTEAD_OF_DEFAULT:
        leaf = key.rsplit(".", 1)[1]
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{leaf}:"))
        assert f"default: {defaults[key] if defaults[key] is not None else 'null'}" in line, line

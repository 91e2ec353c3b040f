"""The Node SDK's protocol.js and errors.js mirror plugin_protocol.py and modelport.errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

from modelport import errors, plugin_protocol

NODE_SDK = Path(__file__).resolve().parents[2] / "sdk" / "node"


def _node_constants() -> dict[str, object]:
    text = (NODE_SDK / "protocol.js").read_text("utf-8")
    found = re.findall(r"^exports\.([A-Z_]+) = (.+);$", text, re.M)
    return {name: json.loads(value) for name, value in found}


def _python_constants() -> dict[str, object]:
    return {
        name: getattr(plugin_protocol, name)
        for name in plugin_protocol.__all__
        if name.isupper() and isinstance(getattr(plugin_protocol, name), str | int)
    }


def test_protocol_js_has_every_name_and_number_of_plugin_protocol() -> None:
    assert _node_constants() == _python_constants()


def test_the_node_error_classes_are_modelport_error_classes() -> None:
    text = (NODE_SDK / "errors.js").read_text("utf-8")
    names = re.findall(r"^class (\w+) extends", text, re.M)
    assert names and all(issubclass(getattr(errors, name), errors.ModelportError) for name in names)
    for name in ("AuthError", "RateLimitError", "ModelNotFoundError", "PluginError"):
        assert name in names


def test_the_wheel_ships_every_file_the_node_sdk_publishes() -> None:
    import tomllib

    pyproject = tomllib.loads((NODE_SDK.parents[1] / "pyproject.toml").read_text("utf-8"))
    shipped = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    published = json.loads((NODE_SDK / "package.json").read_text("utf-8"))["files"]
    assert sorted(shipped) == sorted(f"sdk/node/{name}" for name in ["package.json", *published])
    assert all(target.startswith("modelport/plugin_host/node_sdk/") for target in shipped.values())
    assert all((NODE_SDK / name).is_file() for name in published)

"""Edge node configuration: typed, validated YAML with SMARTGATE_EDGE_* env overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartgate.contract import Segment


class ConfigError(ValueError):
    """A configuration file that cannot be loaded; the message names the bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Strict):
    """Connection to the site broker."""

    host: str = Field(default="127.0.0.1", description="broker host")
    port: int = Field(default=1883, ge=1, le=65535, description="broker port")
    username: str | None = Field(default=None, description="MQTT user name of this node")
    password: str | None = Field(default=None, description="MQTT password of this node")
    keepalive_s: int = Field(default=15, ge=5, le=600, description="MQTT keepalive seconds")


class CameraConfig(_Strict):
    """One camera of a lane."""

    name: Segment = Field(description="camera name, unique within the lane")
    role: Literal["front_plate", "rear_plate", "container_side", "container_top"] = Field(
        default="front_plate", description="what the camera looks at"
    )
    source: str = Field(description="video file, image folder, or rtsp:// / http:// URL")
    fps: float = Field(default=5.0, gt=0, le=60, description="frames per second to sample")
    loop: bool = Field(default=False, description="replay a file or folder forever")


class PassageConfig(_Strict):
    """How frames are grouped into one passage."""

    gap_frames: int = Field(
        default=4, ge=1, le=300, description="frames without a vehicle that end a passage"
    )
    min_reads: int = Field(default=1, ge=1, description="plate reads needed to emit a passage")


class LaneConfig(_Strict):
    """One lane handled by this node."""

    lane: Segment = Field(description="lane id, e.g. L1")
    direction: Literal["entry", "exit", "unknown"] = Field(default="unknown")
    cameras: list[CameraConfig] = Field(min_length=1, description="cameras of this lane")
    passage: PassageConfig = Field(default_factory=PassageConfig)

    @model_validator(mode="after")
    def _unique_cameras(self) -> LaneConfig:
        names = [c.name for c in self.cameras]
        if len(names) != len(set(names)):
            raise ValueError(f"camera names must be unique in lane {self.lane}: {names}")
        return self


class EdgeConfig(_Strict):
    """An edge node: its identity, broker, storage and lanes."""

    site: Segment = Field(description="site id, e.g. huunghi")
    node_id: Segment = Field(description="this node's id")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    data_dir: Path = Field(default=Path("data/edge"), description="spool and image storage")
    inference_threads: int = Field(default=0, ge=0, le=64, description="ONNX intra-op threads")
    max_batch: int = Field(default=8, ge=1, le=64, description="frames per detector batch")
    lanes: list[LaneConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_lanes(self) -> EdgeConfig:
        names = [lane.lane for lane in self.lanes]
        if len(names) != len(set(names)):
            raise ValueError(f"lane ids must be unique: {names}")
        return self


def _env_overrides(data: dict, env: dict[str, str]) -> dict:
    """Apply SMARTGATE_EDGE_A__B=value overrides (double underscore = nesting)."""
    prefix = "SMARTGATE_EDGE_"
    for key, value in env.items():
        if not key.startswith(prefix):
            continue
        path = key[len(prefix):].lower().split("__")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(value)
    return data


def load_edge_config(path: Path | str, env: dict[str, str] | None = None) -> EdgeConfig:
    """Load and validate an edge YAML file; raises ConfigError naming the bad key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    data = _env_overrides(data, dict(os.environ if env is None else env))
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError(f"{path}: invalid configuration\n  " + "\n  ".join(lines)) from exc

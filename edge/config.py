"""Edge node configuration: typed, validated YAML with SMARTGATE_EDGE_* env overrides.

See docs/edge.md for every key. Hardware sections (weighbridge, barrier, display) embed the
`hardware.config` models as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from hardware.config import BarrierConfig, DisplayConfig, WeighbridgeConfig
from smartgate.contract import CheckpointRole, Segment


class ConfigError(ValueError):
    """A configuration file that cannot be loaded; the message names the bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Rect = tuple[int, int, int, int]


class MqttConfig(_Strict):
    """Connection to the site broker."""

    host: str = Field(default="127.0.0.1", description="broker host")
    port: int = Field(default=1883, ge=1, le=65535, description="broker port")
    username: str | None = Field(default=None, description="MQTT user name of this node")
    password: str | None = Field(default=None, description="MQTT password of this node")
    keepalive_s: int = Field(default=15, ge=5, le=600, description="MQTT keepalive seconds")
    tls: bool = Field(
        default=False, description="connect over TLS (port usually 8883); implied by tls_ca_file "
        "or tls_cert_file",
    )
    tls_ca_file: Path | None = Field(
        default=None, description="CA certificate (PEM) that signed the broker's; none: system CAs"
    )
    tls_cert_file: Path | None = Field(
        default=None, description="this node's client certificate (PEM), for a broker that "
        "requires one; goes with tls_key_file",
    )
    tls_key_file: Path | None = Field(default=None, description="private key of tls_cert_file")
    inflight: int = Field(
        default=16, ge=1, le=1000, description="spooled messages published ahead of their PUBACK"
    )
    receipt_timeout_s: float = Field(
        default=20.0, gt=0, le=3600,
        description="a PUBACKed passage without central's receipt after this long is published "
        "again once no receipt at all came for this long (a central still receipting is only "
        "behind); reconnects re-publish at once",
    )
    receipt_overtaken_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="a passage sent this long before one central has already receipted is "
        "published again (it was lost on the way, e.g. in a broker restart)",
    )

    @model_validator(mode="after")
    def _tls_files(self) -> MqttConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        if self.tls_ca_file is not None or self.tls_cert_file is not None:
            self.tls = True
        return self


CameraRole = Literal["front_plate", "rear_plate", "trailer_plate", "container_side", "container_top"]


class CameraConfig(_Strict):
    """One camera of a lane."""

    name: Segment = Field(description="camera name, unique within the lane")
    role: CameraRole = Field(
        default="front_plate",
        description="what the camera looks at; a rear_plate read that is a trailer plate is sent "
        "as the trailer's, a trailer_plate camera's always is",
    )
    source: str = Field(
        description="video file, image folder, rtsp:// / http:// URL, or `sim` (a simulated "
        "camera the program supplies)"
    )
    fps: float = Field(default=5.0, gt=0, le=60, description="frames per second to sample")
    loop: bool = Field(default=False, description="replay a file or folder forever")
    roi: Rect | None = Field(
        default=None, description="region of interest x, y, width, height; inference sees only it"
    )
    scale: float = Field(
        default=1.0, gt=0.1, le=1.0,
        description="inference sees the ROI resized by this factor (cheaper detection; boxes are "
        "reported in full-frame pixels)",
    )
    reconnect_initial_s: float = Field(default=0.5, gt=0, description="first reconnect wait")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="longest reconnect wait")

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        if self.roi is not None and (self.roi[2] < 16 or self.roi[3] < 16 or min(self.roi) < 0):
            raise ValueError(f"roi {self.roi} must be x, y >= 0 and width, height >= 16")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self


class PlateTrigger(_Strict):
    """No presence sensor: a vehicle is present while plates are read (every frame inferred)."""

    type: Literal["plate"] = "plate"
    gap_frames: int = Field(
        default=4, ge=1, le=300, description="frames of a camera without a plate that end a passage"
    )


class WeighbridgeTrigger(_Strict):
    """Presence from the lane's weighbridge: vehicle on → passage; weight captured → emitted."""

    type: Literal["weighbridge"] = "weighbridge"


class VirtualLoopTrigger(_Strict):
    """Frame difference against a slowly adapting background inside a zone of one camera."""

    type: Literal["virtual_loop"] = "virtual_loop"
    camera: Segment = Field(description="camera of this lane whose frames are watched")
    zone: Rect | None = Field(default=None, description="x, y, width, height; default whole frame")
    threshold: float = Field(
        default=0.05, gt=0, lt=1, description="fraction of changed zone pixels meaning occupied"
    )
    pixel_delta: int = Field(default=25, ge=1, le=255, description="grey-level change per pixel")
    on_frames: int = Field(default=2, ge=1, description="occupied frames in a row to switch on")
    off_frames: int = Field(default=4, ge=1, description="empty frames in a row to switch off")
    learn_rate: float = Field(
        default=0.05, gt=0, le=1, description="background adaptation per empty frame"
    )


class MqttTrigger(_Strict):
    """An external trigger (loop detector, PLC) publishing `on`/`off` on the lane trigger topic."""

    type: Literal["mqtt"] = "mqtt"


TriggerConfig = Annotated[
    PlateTrigger | WeighbridgeTrigger | VirtualLoopTrigger | MqttTrigger,
    Field(discriminator="type"),
]


class PassageConfig(_Strict):
    """How reads are grouped into one passage."""

    min_reads: int = Field(default=1, ge=1, description="plate reads needed to emit a passage")
    split_reads: int = Field(
        default=2, ge=1, description="reads in a row of another plate that split the passage"
    )
    merge_window_s: float = Field(
        default=30.0,
        ge=0,
        description="the same plate reappearing this soon after its passage is a reversing "
        "truck: merged, not emitted again",
    )
    max_images: int = Field(default=6, ge=0, le=32, description="evidence images per passage")
    close_wait_ms: float = Field(
        default=400.0, ge=0, le=60_000,
        description="after trigger off, a passage that already has its reads waits at most this "
        "long for frames still in inference (bounds trigger-to-event latency)",
    )


class FramePolicyConfig(_Strict):
    """Which camera frames of a lane are inferred (`edge.assembly.frame_policy`): a camera is
    read only while it can still add something to the passage."""

    settle_reads: int = Field(
        default=2, ge=0, le=20,
        description="a plate role (front, rear, trailer) is settled once one of its cameras read "
        "a text that this many frames of the passage (any plate camera of the lane) read the "
        "same, grammar-valid; its cameras are then read at settled_fps only (0: never settle, "
        "every frame is inferred)",
    )
    settled_fps: float = Field(
        default=0.0, ge=0, le=60,
        description="frames per second per camera of a settled role until trigger off (0: none; "
        "> 0 keeps watching for a second vehicle under the same trigger, split_reads)",
    )
    idle_fps: float | None = Field(
        default=None, gt=0, le=60,
        description="`plate` trigger lanes: frames per second per camera inferred while no "
        "passage is open (the first plate opens one; then every frame until it closes); none: "
        "every sampled frame",
    )


class ControllerConfig(_Strict):
    """Lane controller timings (messages keep the hardware defaults)."""

    auto_close_seconds: float = Field(default=60.0, gt=0, description="open barrier auto-close")


class LaneConfig(_Strict):
    """One lane handled by this node."""

    lane: Segment = Field(description="lane id, e.g. L1")
    direction: Literal["entry", "exit", "unknown"] = Field(default="unknown")
    role: CheckpointRole | None = Field(
        default=None,
        description="checkpoint role sent in each passage (yard_entry, yard_exit, inspection, "
        "border_exit, ...): central links a truck's passages into its journey through the site",
    )
    cameras: list[CameraConfig] = Field(min_length=1, description="cameras of this lane")
    trigger: TriggerConfig = Field(default_factory=PlateTrigger, description="presence source")
    passage: PassageConfig = Field(default_factory=PassageConfig)
    frames: FramePolicyConfig = Field(
        default_factory=FramePolicyConfig, description="which frames are inferred"
    )
    weighbridge: WeighbridgeConfig | None = Field(default=None, description="scale indicator")
    barrier: BarrierConfig | None = Field(default=None, description="barrier and lights")
    display: DisplayConfig | None = Field(default=None, description="lane message display")
    controller: ControllerConfig = Field(default_factory=ControllerConfig)

    @model_validator(mode="after")
    def _check(self) -> LaneConfig:
        names = [c.name for c in self.cameras]
        if len(names) != len(set(names)):
            raise ValueError(f"camera names must be unique in lane {self.lane}: {names}")
        if isinstance(self.trigger, WeighbridgeTrigger) and self.weighbridge is None:
            raise ValueError(f"lane {self.lane}: trigger weighbridge needs a weighbridge section")
        if isinstance(self.trigger, VirtualLoopTrigger) and self.trigger.camera not in names:
            raise ValueError(
                f"lane {self.lane}: trigger camera {self.trigger.camera!r} is not one of {names}"
            )
        if (self.barrier is None) != (self.display is None):
            raise ValueError(f"lane {self.lane}: barrier and display are configured together")
        return self


class InferenceConfig(_Strict):
    """The batched inference scheduler and its ONNX sessions."""

    threads: int = Field(
        default=0, ge=0, le=64,
        description="ONNX intra-op threads of each session run (0: the CPUs this process may "
        "run on shared out among the workers: one each when there are as many workers as CPUs)",
    )
    workers: int = Field(
        default=0, ge=0, le=64,
        description="inference workers taking batches side by side (0: one per CPU this process "
        "may run on, or per `threads` CPUs when threads is set): on a CPU two 1080p frames on "
        "one intra-op thread each finish nearly twice as fast as one frame on two",
    )
    max_batch: int = Field(default=4, ge=1, le=64, description="frames per batch at most")
    max_delay_ms: float = Field(
        default=20.0, ge=0, le=5000, description="longest wait for a batch to fill"
    )
    max_batch_pixels: int | None = Field(
        default=2_500_000, ge=1,
        description="image pixels per batch at most (at least one image): on a CPU a 1080p "
        "frame (2.1 Mpx) runs alone, so its result does not wait for three others; ROI crops "
        "still batch by max_batch; none: no limit (a GPU)",
    )
    queue_frames: int = Field(
        default=1, ge=1, le=100,
        description="frames waiting per camera; live sources drop the oldest (1: only the "
        "newest frame of each camera waits)",
    )
    det_limit_side: int = Field(
        default=736, ge=64, le=2000, description="text detector input: shorter side upscaled to"
    )
    model_dir: Path | None = Field(
        default=None, description="folder of replacement models, e.g. `smartgate models quantize`"
    )
    regions: list[Literal["vn", "cn", "us", "eu", "br", "other"]] = Field(
        default=["vn", "cn"], description="plate formats expected"
    )
    province_prior: Literal["adaptive", "off"] = Field(
        default="adaptive",
        description="learn the site's Chinese provinces from confident reads and weigh the "
        "province glyph with them (edge.recognition.province_prior)",
    )
    plate_locator: Literal["cascade", "detector"] = Field(
        default="cascade",
        description="where frames are searched for plates: the coarse text-detector cascade, "
        "or first the project's plate detector (models/plate_detector), whose windows replace "
        "the coarse pass where it finds a plate with certainty (opt-in: faster, one plate "
        "fewer on openalpr-endtoend; docs/plates.md)",
    )
    plate_recognizer: Literal["ppocr", "own", "fused"] = Field(
        default="ppocr",
        description="who reads plate text: PP-OCR, the project's plate model (models/"
        "plate_recognizer; `model_dir` may hold a site-adapted plate_rec.onnx), or both fused",
    )


class ImagesConfig(_Strict):
    """Evidence JPEG ring buffer (a passage's images are copied out of it for upload)."""

    capacity: int = Field(default=2000, ge=10, description="JPEGs kept")
    quality: int = Field(default=85, ge=30, le=100, description="JPEG quality")


class EvidenceConfig(_Strict):
    """Upload of each passage's evidence images to central (docs/evidence.md): spooled in
    `data_dir/evidence.db` until central confirms each one."""

    central_url: str | None = Field(
        default=None,
        description="central's base URL, e.g. https://central.site:8000; none: no upload "
        "(images then live only in the ring buffer)",
    )
    token: SecretStr | None = Field(
        default=None, description="bearer token of this edge's central account (edge-ingest)"
    )
    token_file: Path | None = Field(default=None, description="file holding that token")
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="one upload's time limit")
    retry_initial_s: float = Field(
        default=1.0, gt=0, le=600, description="first wait after a failed upload (doubles)"
    )
    retry_max_s: float = Field(default=120.0, gt=0, le=3600, description="longest wait")
    warn_pending: int = Field(
        default=20_000, ge=10, description="images waiting above which the node warns loudly"
    )

    @model_validator(mode="after")
    def _credential(self) -> EvidenceConfig:
        if self.central_url is not None:
            if not self.central_url.startswith(("http://", "https://")):
                raise ValueError("central_url must start with http:// or https://")
            if self.token is None and self.token_file is None:
                raise ValueError("central_url needs token or token_file")
        return self

    def bearer(self) -> str | None:
        """The token (read from `token_file` when given there)."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"evidence.token_file: cannot read {self.token_file}: {exc}"
                                  ) from exc
        return None


class EdgeConfig(_Strict):
    """An edge node: its identity, broker, storage, inference and lanes."""

    site: Segment = Field(description="site id, e.g. huunghi")
    node_id: Segment = Field(description="this node's id")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    data_dir: Path = Field(default=Path("data/edge"), description="spool and image storage")
    spool_max_messages: int = Field(
        default=100_000, ge=10, description="spool depth above which the node warns loudly"
    )
    status_interval_s: float = Field(default=10.0, gt=0, description="NodeStatus period")
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="serve Prometheus /metrics on this port (on metrics_host); none: off",
    )
    metrics_host: str = Field(default="127.0.0.1", description="address /metrics binds")
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
        path = key[len(prefix) :].lower().split("__")
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

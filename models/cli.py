"""`smartgate models ...` commands."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from smartgate.cli import CommandGroups, subcommands


def run_quantize(args: argparse.Namespace) -> int:
    """Write int8 copies of the PP-OCR detector and recognizer (the recognizer statically
    quantized with `--static`) and time them against fp32."""
    import numpy as np

    from models.quantize import (
        QUANTIZABLE,
        quantize_models,
        rendered_rec_inputs,
        time_side_by_side,
    )
    from models.registry import REGISTRY

    names = tuple(args.models or QUANTIZABLE)
    originals = {name: REGISTRY[name].path for name in names}
    written = quantize_models(args.out, names, calibration=args.calibration if args.static else 0,
                              seed=args.calibration_seed, float_depthwise=args.float_depthwise,
                              float_leading=args.float_convs)
    for name, path in written.items():
        line = [f"{name}: {originals[name].stat().st_size / 1e6:.1f} MB -> "
                f"{path.stat().st_size / 1e6:.1f} MB ({path})"]
        if args.time:
            if name == "ppocr_rec":  # lines of other rendered plates, one per call like a crop
                inputs = rendered_rec_inputs(args.time, seed=args.calibration_seed + 1)
            else:
                frame = np.random.default_rng(0).random((1, 3, 320, 640), dtype=np.float32)
                inputs = [frame] * args.time
            fp32, int8 = (np.median(s) * 1000 for s in time_side_by_side(
                (originals[name], path), inputs, args.threads))
            line.append(f"{len(inputs)} inputs alternated: fp32 {fp32:.1f} ms, "
                        f"int8 {int8:.1f} ms ({fp32 / int8:.2f}x)")
        print("  ".join(line))
    print(f"use them with SMARTGATE_MODEL_DIR={args.out} (e.g. smartgate eval) "
          f"or inference.model_dir in the edge configuration")
    return 0


def _missing_train_extra(command: str) -> str | None:
    """Why `smartgate models COMMAND` cannot run: the [train] extra (torch) is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return (f"smartgate models {command} needs the [train] extra "
                f"(pip install -e '.[train]'): {exc}")
    return None


def _train(args: argparse.Namespace, command: str, module: str) -> int:
    """Train the model of `module` (a package's train.py), resuming from its committed
    checkpoint and exporting as it goes; print the last metrics."""
    if missing := _missing_train_extra(command):
        print(missing, file=sys.stderr)
        return 2
    trainer = importlib.import_module(module)
    config = trainer.load_config(args.config) if args.config else trainer.load_config()
    if args.threads:
        config = config.model_copy(update={"threads": args.threads})
    metrics = trainer.train(config, steps=args.steps, resume=not args.restart)
    print(json.dumps(metrics))
    return 0


def run_train_plates(args: argparse.Namespace) -> int:
    """Train (resuming from the committed checkpoint) and export the plate recognizer."""
    return _train(args, "train-plates", "models.plate_recognizer.train")


def run_export_plates(args: argparse.Namespace) -> int:
    """Export a plate-recognizer checkpoint to ONNX (+ its JSON), checked in onnxruntime."""
    if missing := _missing_train_extra("export-plates"):
        print(missing, file=sys.stderr)
        return 2
    from models.plate_recognizer.export import export
    from models.plate_recognizer.train import CHECKPOINT, ONNX_OUT, load_checkpoint, load_config

    model, state = load_checkpoint(args.checkpoint or CHECKPOINT, load_config())
    out = export(model, args.out or ONNX_OUT,
                 metrics={**state.get("metrics", {}), "steps": state["step"]})
    print(f"exported step {state['step']} to {out}")
    return 0


def run_train_plate_detector(args: argparse.Namespace) -> int:
    """Train (resuming from the committed checkpoint) and export the plate detector."""
    return _train(args, "train-plate-detector", "models.plate_detector.train")


def run_adapt(args: argparse.Namespace) -> int:
    """Fine-tune the plate recognizer on labeled folders into a model folder."""
    if missing := _missing_train_extra("adapt"):
        print(missing, file=sys.stderr)
        return 2
    from models.plate_recognizer.adapt import LabeledDataError, adapt, load_labeled

    try:
        plates = [p for folder in args.data for p in load_labeled(Path(folder))]
        summary = adapt(plates, Path(args.out), steps=args.steps, minutes=args.minutes,
                        threads=args.threads, checkpoint=args.checkpoint)
    except LabeledDataError as exc:
        print(f"smartgate models adapt: {exc}", file=sys.stderr)
        return 2
    print(f"adapted on {summary['labeled_plates']} plates in {summary['seconds']} s: "
          f"loss {summary['loss_first']} -> {summary['loss_last']}; use it with "
          f"inference.model_dir: {args.out} or smartgate eval DIR --model-dir {args.out}")
    print(json.dumps(summary))
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate models quantize|train-plates|export-plates|train-plate-detector|adapt`."""
    sub = subcommands(commands.top.add_parser("models", help="model files"), "models_command")
    q = sub.add_parser("quantize", help="write int8 copies of the PP-OCR det/rec models")
    q.add_argument("--out", default="models/int8", help="folder for the quantized models")
    q.add_argument("--time", type=int, default=0, metavar="N",
                   help="also time each model, fp32 and int8 alternated call by call on N "
                        "inputs (the recognizer: lines of N rendered plates)")
    q.add_argument("--threads", type=int, default=1, help="intra-op threads for --time")
    q.add_argument("--models", nargs="+", choices=("ppocr_det", "ppocr_rec"),
                   help="which models (default: both)")
    q.add_argument("--static", action="store_true",
                   help="quantize the recognizer statically (QDQ), calibrated on rendered plates")
    q.add_argument("--calibration", type=int, default=200, metavar="N",
                   help="rendered plates whose lines calibrate --static (default 200)")
    q.add_argument("--calibration-seed", type=int, default=0, help="seed of those plates")
    q.add_argument("--float-convs", type=int, default=0, metavar="K",
                   help="--static: keep the first K convolutions in float (default none)")
    q.add_argument("--float-depthwise", action="store_true",
                   help="--static: keep the depthwise convolutions in float")
    q.set_defaults(func=run_quantize)

    t = sub.add_parser("train-plates", help="train the plate recognizer (resumes the checkpoint)")
    t.add_argument("--config", type=Path, help="training config (default: the committed one)")
    t.add_argument("--steps", type=int, help="more steps (default: to the schedule's end)")
    t.add_argument("--threads", type=int, default=0, help="torch threads (default: config)")
    t.add_argument("--restart", action="store_true", help="start over instead of resuming")
    t.set_defaults(func=run_train_plates)

    e = sub.add_parser("export-plates", help="export a plate-recognizer checkpoint to ONNX")
    e.add_argument("--checkpoint", type=Path, help="default: the committed checkpoint")
    e.add_argument("--out", type=Path, help="default: models/weights/plate_rec.onnx")
    e.set_defaults(func=run_export_plates)

    d = sub.add_parser("train-plate-detector",
                       help="train the plate detector (resumes the checkpoint, exports the ONNX)")
    d.add_argument("--config", type=Path, help="training config (default: the committed one)")
    d.add_argument("--steps", type=int, help="more steps (default: to the schedule's end)")
    d.add_argument("--threads", type=int, default=0, help="torch threads (default: config)")
    d.add_argument("--restart", action="store_true", help="start over instead of resuming")
    d.set_defaults(func=run_train_plate_detector)

    a = sub.add_parser("adapt", help="fine-tune the plate recognizer on a site's labeled plates")
    a.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="labeled folder (labels.csv + images/), repeatable")
    a.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    a.add_argument("--steps", type=int, default=400, help="fine-tuning steps (default 400)")
    a.add_argument("--minutes", type=float, default=30.0, help="time budget (default 30)")
    a.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    a.add_argument("--checkpoint", type=Path,
                   help="plate-recognizer checkpoint to start from (default: the committed one)")
    a.set_defaults(func=run_adapt)

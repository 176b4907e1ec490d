"""`smartgate models ...` commands."""

from __future__ import annotations

import argparse
import time

from smartgate.cli import CommandGroups, subcommands


def run_quantize(args: argparse.Namespace) -> int:
    """Write int8 copies of the PP-OCR detector and recognizer and time them against fp32."""
    import numpy as np
    from tqdm import tqdm

    from models.quantize import QUANTIZABLE, quantize_models
    from models.registry import REGISTRY, create_session

    originals = {name: REGISTRY[name].path for name in QUANTIZABLE}
    written = quantize_models(args.out)
    shapes = {"ppocr_det": (1, 3, 320, 640), "ppocr_rec": (8, 3, 48, 320)}
    for name, path in written.items():
        line = [f"{name}: {originals[name].stat().st_size / 1e6:.1f} MB -> "
                f"{path.stat().st_size / 1e6:.1f} MB ({path})"]
        if args.time:
            x = np.random.default_rng(0).random(shapes[name], dtype=np.float32)
            for label, model in (("fp32", originals[name]), ("int8", path)):
                session = create_session(model, args.threads)
                feed = {session.get_inputs()[0].name: x}
                session.run(None, feed)
                start = time.perf_counter()
                for _ in tqdm(range(args.time), desc=f"{name} {label}", leave=False):
                    session.run(None, feed)
                line.append(f"{label} {1000 * (time.perf_counter() - start) / args.time:.1f} ms")
        print("  ".join(line))
    print(f"use them with SMARTGATE_MODEL_DIR={args.out} (e.g. smartgate eval) "
          f"or inference.model_dir in the edge configuration")
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate models quantize`."""
    sub = subcommands(commands.top.add_parser("models", help="model files"), "models_command")
    q = sub.add_parser("quantize", help="write int8 copies of the PP-OCR det/rec models")
    q.add_argument("--out", default="models/int8", help="folder for the quantized models")
    q.add_argument("--time", type=int, default=0, metavar="N",
                   help="also time N runs of each model, fp32 vs int8")
    q.add_argument("--threads", type=int, default=0, help="intra-op threads for --time")
    q.set_defaults(func=run_quantize)

"""`smartgate eval` (accuracy on a labeled folder) and `smartgate bench plates` (speed)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from smartgate.cli import CommandGroups


def register(commands: CommandGroups) -> None:
    """Attach `eval` and `bench plates`."""
    p = commands.top.add_parser("eval", help="plate/container reading accuracy on a labeled folder")
    p.add_argument("dataset", nargs="?", type=Path, help="folder with labels.csv and images/")
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    p.add_argument("--errors", type=Path, metavar="OUT_DIR", help="write PNG sheets of misses")
    p.add_argument("--limit", type=int, help="only the first N rows")
    p.add_argument("--regions", help="plate formats to expect, e.g. vn,cn (default: the labels')")
    p.add_argument("--synthetic", choices=("vn", "cn"),
                   help="generate a labeled synthetic set (fixed seed) and evaluate it")
    p.add_argument("--count", type=int, default=300, help="synthetic images (default 300)")
    p.add_argument("--seed", type=int, default=20240601, help="synthetic seed")
    p.add_argument("--scenes", action="store_true", help="synthetic whole truck scenes, not crops")
    p.add_argument("--province-prior", choices=("adaptive", "off"), default="adaptive",
                   help="learn the set's Chinese provinces from confident reads in file order, "
                   "as an edge node does (default), or read every image on its own")
    p.add_argument("--recognizer", choices=("ppocr", "own", "fused"), default="ppocr",
                   help="who reads the plate text: PP-OCR, our plate model, or both fused")
    p.add_argument("--model-dir", type=Path,
                   help="folder of replacement models (e.g. a site-adapted plate_rec.onnx)")
    p.set_defaults(func=run_eval)

    cv = commands.top.add_parser(
        "eval-adapted", help="site adaptation by k-fold cross-validation on a labeled folder")
    cv.add_argument("dataset", type=Path, help="folder with labels.csv and images/")
    cv.add_argument("--folds", type=int, default=5, help="k (default 5)")
    cv.add_argument("--steps", type=int, default=300, help="adaptation steps per fold")
    cv.add_argument("--recognizer", choices=("own", "fused"), default="fused")
    cv.add_argument("--threads", type=int, default=2, help="torch threads while adapting")
    cv.add_argument("--checkpoint", type=Path,
                    help="plate-recognizer checkpoint each fold starts from (default: committed)")
    cv.add_argument("--seed", type=int, default=0, help="fold and adaptation seed (default 0)")
    cv.add_argument("--lr", type=float, help="peak learning rate of the adaptation")
    cv.add_argument("--own-share", type=float, help="share of the site's plates in a batch")
    cv.add_argument("--augment", choices=("light", "camera"),
                    help="variation of the site's plates (camera: the renderer's camera model)")
    cv.add_argument("--stem-lr", type=float, help="learning-rate factor of the CNN stem (0: frozen)")
    cv.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    cv.set_defaults(func=run_eval_adapted)

    ho = commands.top.add_parser(
        "eval-holdout", help="does a tuned threshold/prior hold under k-fold cross-validation?")
    ho.add_argument("dataset", type=Path, help="folder with labels.csv and images/")
    ho.add_argument("--param", required=True,
                    help="vn-one, tall-line, province-prior or province-strength")
    ho.add_argument("--values", required=True,
                    help="candidates, comma-separated, the neutral one first (it wins ties), "
                    "e.g. 1,2,4,8 or off,240 or off,adaptive")
    ho.add_argument("--folds", type=int, default=5, help="k (default 5)")
    ho.add_argument("--seed", type=int, default=0, help="fold seed (default 0)")
    ho.add_argument("--limit", type=int, help="only the first N rows")
    ho.add_argument("--recognizer", choices=("ppocr", "own", "fused"), default="ppocr")
    ho.add_argument("--cache", type=Path, metavar="DIR",
                    help="keep each value's per-image outcomes here and reuse them")
    ho.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    ho.set_defaults(func=run_eval_holdout)

    fu = commands.top.add_parser(
        "eval-fusion", help="PP-OCR + our plate model: the fusion setting chosen by k-fold CV")
    fu.add_argument("datasets", type=Path, nargs="+", help="folders with labels.csv and images/")
    fu.add_argument("--model-dir", type=Path,
                    help="folder holding the plate_rec.onnx (+ .json) to fuse (default: shipped)")
    fu.add_argument("--folds", type=int, default=5, help="k (default 5)")
    fu.add_argument("--seed", type=int, default=0, help="fold seed (default 0)")
    fu.add_argument("--cache", type=Path, metavar="DIR",
                    help="keep PP-OCR's reads of each folder here and reuse them")
    fu.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    fu.set_defaults(func=run_eval_fusion)

    b = commands.bench.add_parser("plates", help="plate reading speed vs rapidocr's pipeline")
    b.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    b.add_argument("--scenes", type=int, default=12, help="scenes to time (default 12)")
    b.add_argument("--crops", type=int, default=48, help="crops to time (default 48)")
    b.add_argument("--threads", type=int, default=0, help="ONNX intra-op threads (0 = auto)")
    b.add_argument("--stages", action="store_true",
                   help="also the share of a scene's and a crop's time per stage (det, rec, "
                        "rec_v5, other)")
    b.set_defaults(func=run_bench)


def run_eval(args: argparse.Namespace) -> int:
    from tools.eval.evaluation import LabelFileError, error_sheet, evaluate

    regions = tuple(args.regions.split(",")) if args.regions else None
    if args.model_dir is not None:
        from models.quantize import use_model_dir

        use_model_dir(args.model_dir)
    with tempfile.TemporaryDirectory(prefix="smartgate-synth-") as tmp:
        if args.synthetic:
            from tools.synth.plates import write_dataset

            folder = write_dataset(Path(tmp) / f"synthetic-{args.synthetic}", args.synthetic,
                                   args.count, args.seed, scenes=args.scenes)
        elif args.dataset is None:
            print("smartgate eval: give a DATASET_DIR or --synthetic REGION", file=sys.stderr)
            return 2
        else:
            folder = args.dataset
        try:
            report = evaluate(folder, limit=args.limit, regions=regions,
                              province_prior=args.province_prior == "adaptive",
                              recognizer=args.recognizer)
        except LabelFileError as exc:
            print(f"smartgate eval: {exc}", file=sys.stderr)
            return 2
        summary = {"dataset": str(args.dataset or f"synthetic-{args.synthetic}"),
                   **report.summary(), "province_prior": args.province_prior,
                   "recognizer": args.recognizer}
        _print_summary(summary, args.json)  # first: nothing after it can lose the result
        if args.errors:
            for path in error_sheet(report, folder, args.errors):
                print(f"errors: {path}", file=sys.stderr)
    return 0


def _print_summary(summary: dict, as_json: bool) -> None:
    print(f"{summary['dataset']}: {summary['correct']}/{summary['images']} correct "
          f"({summary['accuracy']:.1%}, O≡0 {summary['accuracy_o_equals_0']:.1%}, "
          f"in top-N {summary['accuracy_top_n']:.1%}), "
          f"median {summary['median_ms_per_image']} ms/image")
    for region, stats in summary["per_region"].items():
        print(f"  {region}: {stats['correct']}/{stats['images']} ({stats['accuracy']:.1%})")
        for rows, rs in stats.get("per_rows", {}).items():
            print(f"    {rows}-row: {rs['correct']}/{rs['images']} ({rs['accuracy']:.1%})")
    if summary["unreadable_images"]:
        print(f"  not scored, unreadable: {len(summary['unreadable_images'])} image(s)")
    if as_json:
        print(json.dumps(summary, ensure_ascii=False), flush=True)


def run_eval_adapted(args: argparse.Namespace) -> int:
    """`smartgate eval-adapted`: adapted vs shipped accuracy on held-out folds."""
    from tools.eval.crossval import cross_validate

    recipe = {key: value for key, value in (("lr", args.lr), ("own_share", args.own_share),
                                            ("augment", args.augment), ("stem_lr", args.stem_lr))
              if value is not None}
    summary = cross_validate(args.dataset, args.folds, args.steps, args.recognizer, args.seed,
                             args.threads, args.checkpoint, recipe)
    print(f"{summary['dataset']}: {args.folds}-fold, shipped "
          f"{summary['correct_shipped']}/{summary['images']} ({summary['accuracy_shipped']:.1%})"
          f", adapted {summary['correct_adapted']}/{summary['images']} "
          f"({summary['accuracy_adapted']:.1%}), {summary['adapt_minutes_per_fold']} min "
          f"adapting per fold")
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0


def run_eval_holdout(args: argparse.Namespace) -> int:
    """`smartgate eval-holdout`: CV selection of one parameter vs each fixed value."""
    from tools.eval.evaluation import LabelFileError
    from tools.eval.holdout import ParamError, holdout

    try:
        s = holdout(args.dataset, args.param, args.values.split(","), args.folds, args.seed,
                    args.limit, args.recognizer, args.cache)
    except (LabelFileError, ParamError) as exc:
        print(f"smartgate eval-holdout: {exc}", file=sys.stderr)
        return 2
    print(f"{s['dataset']} {s['param']}: {s['folds']}-fold select-by-CV "
          f"{s['cv_correct']}/{s['images']} ({s['cv_accuracy']:.1%})")
    for value, fixed in s["fixed"].items():
        print(f"  {value}: fixed {fixed['correct']}/{s['images']} ({fixed['accuracy']:.1%}), "
              f"+{fixed['gains']}/-{fixed['losses']} vs {next(iter(s['fixed']))}, "
              f"chosen in {s['chosen'][value]}/{s['folds']} folds")
    print(f"  default {s['default']}: {'holds' if s['holds'] else 'does not hold'}"
          f" (CV winner {s['cv_winner']})")
    if args.json:
        print(json.dumps(s, ensure_ascii=False))
    return 0


def run_eval_fusion(args: argparse.Namespace) -> int:
    """`smartgate eval-fusion`: per-fold held-out reads of PP-OCR alone and of the fusion."""
    from tools.eval.evaluation import LabelFileError
    from tools.eval.fusion_cv import evaluate_fusion

    if args.model_dir is not None:
        from models.quantize import use_model_dir

        use_model_dir(args.model_dir)
    try:
        s = evaluate_fusion(args.datasets, args.folds, args.seed, args.cache)
    except LabelFileError as exc:
        print(f"smartgate eval-fusion: {exc}", file=sys.stderr)
        return 2
    print(f"{s['folds']}-fold CV over {s['images']} plate images ({s['settings']} settings): "
          f"PP-OCR alone {s['cv_correct_ppocr']}, fused {s['cv_correct_fused']} held-out correct")
    for fold in s["per_fold"]:
        chosen = ", ".join(f"{r} {v}" for r, v in fold["chosen"].items() if v != "ppocr")
        print(f"  fold {fold['fold']}: ppocr {fold['ppocr']}/{fold['images']}, fused "
              f"{fold['fused']}/{fold['images']} ({chosen or 'ppocr everywhere'})")
    for region, r in s["per_region"].items():
        print(f"  {region} ({r['images']}): held-out ppocr {r['cv_ppocr']}, fused {r['cv_fused']}"
              f"; chosen {r['chosen']}; adopted: {r['adopt']}")
    print(f"  plates.FUSION = {s['recommended']}")
    if args.json:
        print(json.dumps(s, ensure_ascii=False))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from tools.eval.evaluation import bench_plates

    summary = bench_plates(n_scenes=args.scenes, n_crops=args.crops, threads=args.threads,
                           stages=args.stages)
    for key, value in summary.items():
        print(f"{key}: {value}")
    if args.json:
        print(json.dumps(summary))
    return 0

"""Headless commands: the same core functions the GUI uses."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from .cli_history import add_history_parsers, cmd_history, cmd_info
from .cli_library import add_library_parser, add_lora_argument, cmd_library, parse_lora_options
from .cli_models import add_models_parsers, cmd_download, cmd_models
from .core.files.app_data import take_notices
from .core.depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from .core.errors import D2IError
from .core.models.registry import NotDownloaded
from .core.generation.params import DEFAULT_SCHEDULER, SCHEDULERS, GenerationParams
from .logs import log_to_file

EXIT_USAGE = 2
EXIT_INTERNAL = 1
MAX_MASK_BLUR = 256
log = logging.getLogger(__name__)


class CliError(D2IError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, like ours
        raise CliError(f"{message}.", f"Run '{self.prog} --help' for usage.")


class _SelfTest(argparse.Action):
    """`d2i --self-test`: like --version, it runs on its own and exits."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="check this installation offline (demo model in a temporary folder) and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from .self_test import run_self_test

        parser.exit(run_self_test())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="d2i", description="d2i-desktop from the command line.")
    parser.add_argument("--self-test", action=_SelfTest)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="repaint an image guided by its depth")
    gen.add_argument("--image", required=True, type=Path)
    gen.add_argument("--depth", type=Path, help="a depth map to use instead of estimating one")
    gen.add_argument("--mask", type=Path, help="repaint only this region: a greyscale PNG, white = repaint, black = keep")
    gen.add_argument("--mask-blur", type=int, default=4, metavar="PX",
                     help="soften the mask's edge over this many pixels on each side (default: 4)")
    gen.add_argument("--out", required=True, type=Path, help="output PNG (never overwritten: a free name is chosen)")
    add_generation_options(gen)

    batch = commands.add_parser("batch", help="repaint every image of a folder; a rerun resumes where it stopped")
    batch.add_argument("--input-dir", required=True, type=Path,
                       help="the images; NAME.depth.png or NAME.depth.npy beside NAME.jpg is its depth map")
    batch.add_argument("--out-dir", required=True, type=Path,
                       help="where the pictures and batch-summary.json go; images with a picture here are skipped")
    batch.add_argument("--ray", metavar="ADDRESS", help="spread the batch over the Ray cluster at ADDRESS "
                                                        "(e.g. auto, HOST:6379, or local to start one here)")
    batch.add_argument("--actors", type=int, help="with --ray: how many engines (default: one per GPU, else one per node)")
    add_generation_options(batch)

    depth = commands.add_parser("depth", help="estimate a depth map and save it as a 16-bit PNG (or float32 .npy)")
    depth.add_argument("--model", help="an SD2-depth model, whose own DPT-hybrid estimates (not needed with --estimator)")
    depth.add_argument("--image", required=True, type=Path)
    depth.add_argument("--device")
    depth.add_argument("--out", required=True, type=Path)
    add_estimator_options(depth, default=None)

    commands.add_parser("estimators", help="the depth estimators: name, label, licence, size, downloaded or not")

    demo = commands.add_parser("make-demo-model", help="build the tiny random-weight demo model")
    demo.add_argument("folder", type=Path)
    add_library_parser(commands)
    add_models_parsers(commands)
    add_history_parsers(commands)

    bench = commands.add_parser("bench", help="time the plain pipeline against the engine's fast and low-memory modes")
    bench.add_argument("--quick", action="store_true", help="demo model sanity run (the default without CUDA)")
    bench.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")
    bench.add_argument("--sizes", type=int, nargs="+", help="square image sizes (default: 512 768, quick: 96 128)")
    bench.add_argument("--repeats", type=int, help="timed runs per size (default: 2)")
    bench.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    bench.add_argument("--json", type=Path, default=Path("bench.json"), help="where to write the figures as JSON")
    return parser


def add_generation_options(command) -> None:
    """The settings of a generation, shared by generate and batch."""
    command.add_argument("--model", required=True, help="diffusers model folder or Hugging Face id")
    command.add_argument("--prompt", required=True)
    command.add_argument("--negative", default="")
    command.add_argument("--depth-bright", choices=("near", "far", "auto"), default="auto",
                         help="what bright means in a depth file: near (MiDaS-style inverse depth), far (a renderer's "
                              "Z pass) or auto (guess, and say which was assumed)")
    command.add_argument("--strength", type=float, default=0.8)
    command.add_argument("--steps", type=int, default=30)
    command.add_argument("--guidance", type=float, default=7.5)
    command.add_argument("--seed", type=int, default=-1, help="-1 for random (the seed used is printed)")
    command.add_argument("--images", type=int, default=1, help="images per prompt")
    command.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help="one of: " + ", ".join(SCHEDULERS))
    command.add_argument("--tile", action="store_true", help="make a picture that repeats seamlessly")
    add_estimator_options(command)
    command.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")
    command.add_argument("--precision", choices=("fp16", "bf16", "fp32"), help="default: fp16 on CUDA, fp32 elsewhere")
    command.add_argument("--preset", choices=("fastest", "balanced", "low VRAM"), default="balanced",
                         help="speed and memory settings, as on the app's Performance page (default: balanced)")
    add_lora_argument(command)


def add_estimator_options(command, default: str | None = DEFAULT_ESTIMATOR) -> None:
    command.add_argument("--estimator", type=_estimator_name, default=default, metavar="NAME",
                         help="what estimates the depth: " + ", ".join(ESTIMATORS) + f" (default: {DEFAULT_ESTIMATOR}, "
                              "what SD2-depth was trained on); 'd2i estimators' lists them with their licences")
    command.add_argument("--fine-detail", action="store_true",
                         help="for large photos: estimate overlapping tiles too and merge their detail in (slower)")


def _estimator_name(text: str) -> str:
    if text.lower() not in ESTIMATORS:
        raise argparse.ArgumentTypeError(f"unknown depth estimator '{text}' (choose one of: {', '.join(ESTIMATORS)})")
    return text.lower()


def _params(args) -> GenerationParams:
    return GenerationParams(
        prompt=args.prompt, negative_prompt=args.negative, strength=args.strength, steps=args.steps,
        guidance_scale=args.guidance, seed=args.seed, num_images=args.images, scheduler=args.scheduler,
        loras=parse_lora_options(args.lora), tile=args.tile, depth_estimator=args.estimator,
        depth_fine_detail=args.fine_detail,
    ).validated()  # before the slow model load


_BRIGHT_IS_NEAR = {"near": True, "far": False, "auto": None}


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load(args):
    from .core.generation.batch import open_engine
    from .core.files.images import load_image

    loaded = load_image(args.image)
    engine = open_engine(args.model, args.device, getattr(args, "precision", None), getattr(args, "preset", None), _progress)
    return engine, loaded


def _mask_levels(args, size: tuple[int, int]):
    """The --mask file feathered by --mask-blur, as the 8-bit levels kept beside the picture (None without --mask)."""
    from .core.generation.masks import feather, load_mask, mask_levels

    if args.mask is None:
        return None
    mask, notes = load_mask(args.mask, size)
    for note in notes:
        _progress(f"note: {note}")
    return mask_levels(feather(mask, args.mask_blur))


def cmd_generate(args) -> int:
    from .core.generation.batch import repaint
    from .core.history.index import History

    params = _params(args)
    if not 0 <= args.mask_blur <= MAX_MASK_BLUR:
        raise CliError(f"--mask-blur {args.mask_blur} is outside 0..{MAX_MASK_BLUR}.", "Use 4-16 pixels for most masks.")
    engine, loaded = _load(args)
    mask = _mask_levels(args, loaded.image.size)

    def on_step(info):
        _progress(f"step {info.step}/{info.total} ({info.step / max(info.elapsed, 1e-9):.2f} it/s)")

    if not args.depth:
        _progress(f"estimating depth with {params.depth_settings.describe()}…")
    elif args.estimator != DEFAULT_ESTIMATOR or args.fine_detail:
        _progress("note: --estimator and --fine-detail are not used: the depth map comes from --depth")
    done = repaint(engine, params, args.image, loaded, args.depth, _BRIGHT_IS_NEAR[args.depth_bright], args.out, on_step,
                   mask_levels=mask)
    for note in done.notes:
        _progress(f"note: {note}")
    history = History()
    try:
        for (path, record), seed in zip(done.saved, done.seeds):
            history.add(path, record)
            print(f"{path}\tseed {seed}")
    finally:
        history.close()
    return 0


def cmd_batch(args) -> int:
    from .core.generation.batch import BatchRunner, BatchSummary, plan, ray_results, run_batch
    from .core.history.hashes import HashCache
    from .core.history.index import History

    params = _params(args)
    if args.actors is not None and (args.actors < 1 or not args.ray):
        raise CliError("--actors needs --ray and a count of 1 or more.", "")
    todo, done = plan(args.input_dir, args.out_dir, HashCache())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    _progress(f"{len(todo) + len(done)} images, {len(done)} already done in {args.out_dir}")
    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    runner_args = (model, args.device, args.precision, args.preset, params, args.out_dir.resolve(),
                   _BRIGHT_IS_NEAR[args.depth_bright])
    if not todo:
        results = iter(())
    elif args.ray:
        results = ray_results(args.ray, args.actors, runner_args, todo, _progress)
    else:
        runner = BatchRunner(*runner_args)
        for note in runner.take_notes():
            _progress(note)
        results = map(runner.run, todo)
    summary = BatchSummary(str(args.input_dir.resolve()), str(args.out_dir.resolve()), model, dataclasses.asdict(params),
                           args.ray, len(todo) + len(done), already_done=[str(item.image) for item in done])
    history = History()
    try:
        history.sync([args.out_dir])  # pictures deleted from the output folder leave the index before theirs are made again
        run_batch(summary, todo, results, _progress, history.add)
    finally:
        history.close()
    print(summary.line())
    return 0


def cmd_depth(args) -> int:
    from .core.depth.estimators import DepthSettings
    from .core.depth.maps import save_depth_npy, save_depth_png16

    if args.model is None and args.estimator is None:
        raise CliError("d2i depth needs --model (an SD2-depth model, whose own DPT-hybrid estimates) or --estimator NAME.",
                       "'d2i estimators' lists the estimators.")
    settings = DepthSettings(args.estimator or DEFAULT_ESTIMATOR, args.fine_detail)
    if args.model is None:
        estimate = _estimate_alone(args.image, settings, args.device)
    else:
        engine, loaded = _load(args)
        _progress(f"estimating depth with {settings.describe()}…")
        estimate = engine.depth_estimate(loaded.image, settings=settings)
    for note in estimate.notes:
        _progress(f"note: {note}")
    save = save_depth_npy if args.out.suffix.lower() == ".npy" else save_depth_png16
    print(save(estimate.depth, args.out))
    return 0


def _estimate_alone(image_path: Path, settings, device: str | None):
    """The estimate of `settings`' estimator, loaded from the Hugging Face cache without an SD model."""
    from .core.files.images import load_image
    from .core.generation.depth_source import DepthSource
    from .core.generation.engine import pick_device, pick_dtype

    loaded = load_image(image_path)
    device = pick_device(device)
    _progress(f"estimating depth with {settings.describe()} on {device}…")
    return DepthSource().estimate(loaded.image, settings, None, device, pick_dtype(device))


def cmd_estimators(_args) -> int:
    from .core.depth.estimators import estimator_folder
    from .core.models.downloads import format_bytes

    for spec in ESTIMATORS.values():
        licence = spec.licence if spec.commercial_use else f"{spec.licence} (non-commercial)"
        state = "downloaded" if estimator_folder(spec.name) else "not downloaded"
        if spec.name == DEFAULT_ESTIMATOR:
            state += " (default; SD2-depth models carry their own)"
        print(f"{spec.name}\t{spec.label}\t{licence}\t{format_bytes(spec.size_bytes)}\t{state}")
    return 0


def cmd_make_demo_model(args) -> int:
    from .core.models.demo import DEMO_LABEL, make_demo_model

    _progress(f"building the {DEMO_LABEL} in {args.folder}…")
    print(make_demo_model(args.folder))
    return 0


def cmd_bench(args) -> int:
    from .bench import BenchConfig, format_table, run_benchmark, write_json

    config = BenchConfig.for_device(quick=args.quick or None, device=args.device, repeats=args.repeats,
                                    sizes=tuple(args.sizes) if args.sizes else None)
    if args.json.is_dir():
        raise CliError(f"{args.json} is a folder.", "Give --json a file name, e.g. bench.json.")
    report = run_benchmark(config, say=_progress, threads=args.threads, checkpoint=args.json)
    print(format_table(report))
    print(f"JSON: {write_json(report, args.json)}")
    return 0


COMMANDS = {"generate": cmd_generate, "batch": cmd_batch, "depth": cmd_depth, "estimators": cmd_estimators,
            "make-demo-model": cmd_make_demo_model, "bench": cmd_bench,
            "library": cmd_library, "models": cmd_models, "download": cmd_download, "history": cmd_history, "info": cmd_info}


def main(argv: list[str] | None = None) -> int:
    log_path = log_to_file()  # tracebacks go to the log file; the terminal gets one line
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except NotDownloaded as exc:
        log.info("%s", exc, exc_info=True)
        print(f"error: {exc.message} Download it with 'd2i download {exc.repo}'.", file=sys.stderr)
        return EXIT_USAGE
    except D2IError as exc:
        log.info("%s", exc, exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except Exception:
        log.exception("unexpected error in d2i %s", " ".join(sys.argv[1:] if argv is None else argv))
        where = f"the details are in {log_path}" if log_path else "the log file could not be written"
        print(f"error: an unexpected internal error stopped the command; {where}.", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        for notice in take_notices():
            print(f"note: {notice}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

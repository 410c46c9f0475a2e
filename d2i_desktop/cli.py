"""Headless commands: the same core functions the GUI uses."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .cli_history import add_history_parsers, cmd_history, cmd_info
from .cli_library import add_library_parser, add_lora_argument, cmd_library, parse_lora_options
from .cli_models import add_models_parsers, cmd_download, cmd_models
from .core.app_data import take_notices
from .core.errors import D2IError
from .core.models import NotDownloaded
from .core.params import DEFAULT_SCHEDULER, SCHEDULERS, GenerationParams
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
    gen.add_argument("--model", required=True, help="diffusers model folder or Hugging Face id")
    gen.add_argument("--image", required=True, type=Path)
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative", default="")
    gen.add_argument("--depth", type=Path, help="a depth map to use instead of estimating one")
    gen.add_argument("--mask", type=Path, help="repaint only this region: a greyscale PNG, white = repaint, black = keep")
    gen.add_argument("--mask-blur", type=int, default=4, metavar="PX",
                     help="soften the mask's edge over this many pixels on each side (default: 4)")
    gen.add_argument("--depth-bright", choices=("near", "far", "auto"), default="auto",
                     help="what bright means in the --depth file: near (MiDaS-style inverse depth), far (a renderer's "
                          "Z pass) or auto (guess, and say which was assumed)")
    gen.add_argument("--strength", type=float, default=0.8)
    gen.add_argument("--steps", type=int, default=30)
    gen.add_argument("--guidance", type=float, default=7.5)
    gen.add_argument("--seed", type=int, default=-1, help="-1 for random (the seed used is printed)")
    gen.add_argument("--images", type=int, default=1, help="images per prompt")
    gen.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help="one of: " + ", ".join(SCHEDULERS))
    gen.add_argument("--tile", action="store_true", help="make a picture that repeats seamlessly")
    gen.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")
    gen.add_argument("--precision", choices=("fp16", "bf16", "fp32"), help="default: fp16 on CUDA, fp32 elsewhere")
    gen.add_argument("--out", required=True, type=Path, help="output PNG (never overwritten: a free name is chosen)")
    gen.add_argument("--preset", choices=("fastest", "balanced", "low VRAM"), default="balanced",
                     help="speed and memory settings, as on the app's Performance page (default: balanced)")
    add_lora_argument(gen)

    depth = commands.add_parser("depth", help="estimate a depth map and save it as a 16-bit PNG (or float32 .npy)")
    depth.add_argument("--model", required=True)
    depth.add_argument("--image", required=True, type=Path)
    depth.add_argument("--device")
    depth.add_argument("--out", required=True, type=Path)

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


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load(args):
    from .core.engine import Engine
    from .core.images import load_image

    loaded = load_image(args.image)
    for note in loaded.notes:
        _progress(f"note: {note}")
    engine = Engine(device=args.device, dtype=getattr(args, "precision", None))
    if getattr(args, "preset", None):
        engine.set_performance(engine.performance.with_preset(args.preset))
    _progress(f"loading model {args.model} on {engine.device}…")
    info = engine.load(args.model)
    if getattr(args, "preset", None):
        for note in engine.performance_report.fallbacks:
            _progress(f"note: {note}")
    if info.is_demo:
        _progress(f"note: using the {info.label}: the picture will be noise")
    return engine, loaded


def _mask_levels(args, size: tuple[int, int]):
    """The --mask file feathered by --mask-blur, as the 8-bit levels kept beside the picture (None without --mask)."""
    from .core.masks import feather, load_mask, mask_levels

    if args.mask is None:
        return None
    mask, notes = load_mask(args.mask, size)
    for note in notes:
        _progress(f"note: {note}")
    return mask_levels(feather(mask, args.mask_blur))


def cmd_generate(args) -> int:
    from .core.depth import load_depth
    from .core.history.index import History
    from .core.history.record import depth_levels, levels_to_depth, save_result
    from .core.masks import levels_to_mask

    params = GenerationParams(
        prompt=args.prompt, negative_prompt=args.negative, strength=args.strength, steps=args.steps,
        guidance_scale=args.guidance, seed=args.seed, num_images=args.images, scheduler=args.scheduler,
        loras=parse_lora_options(args.lora), tile=args.tile,
    ).validated()  # before the slow model load
    if not 0 <= args.mask_blur <= MAX_MASK_BLUR:
        raise CliError(f"--mask-blur {args.mask_blur} is outside 0..{MAX_MASK_BLUR}.", "Use 4-16 pixels for most masks.")
    engine, loaded = _load(args)
    mask = _mask_levels(args, loaded.image.size)
    depth = None
    if args.depth:
        bright_is_near = {"near": True, "far": False, "auto": None}[args.depth_bright]
        depth, notes = load_depth(args.depth, loaded.image.size, bright_is_near)
        for note in notes:
            _progress(f"note: {note}")

    def on_step(info):
        _progress(f"step {info.step}/{info.total} ({info.step / max(info.elapsed, 1e-9):.2f} it/s)")

    if depth is None:
        _progress("estimating depth…")
        depth = engine.estimate_depth(loaded.image)
    levels = depth_levels(depth)  # generation uses exactly the 16-bit map kept beside the picture
    result = engine.generate(params, loaded.image, levels_to_depth(levels), on_step=on_step,
                             mask=None if mask is None else levels_to_mask(mask))
    for note in result.notes:
        _progress(f"note: {note}")
    targets = [args.out if index == 0 else args.out.with_name(f"{args.out.stem}-{index}{args.out.suffix}")
               for index in range(len(result.images))]
    saved = save_result(engine, result, args.image, loaded.image, levels, targets, mask_levels=mask)
    history = History()
    try:
        for (path, record), seed in zip(saved, result.seeds):
            history.add(path, record)
            print(f"{path}\tseed {seed}")
    finally:
        history.close()
    return 0


def cmd_depth(args) -> int:
    from .core.depth import save_depth_npy, save_depth_png16

    engine, loaded = _load(args)
    _progress("estimating depth…")
    save = save_depth_npy if args.out.suffix.lower() == ".npy" else save_depth_png16
    saved = save(engine.estimate_depth(loaded.image), args.out)
    print(saved)
    return 0


def cmd_make_demo_model(args) -> int:
    from .core.demo import DEMO_LABEL, make_demo_model

    _progress(f"building the {DEMO_LABEL} in {args.folder}…")
    print(make_demo_model(args.folder))
    return 0


def cmd_bench(args) -> int:
    from .core.bench import BenchConfig, format_table, run_benchmark, write_json

    config = BenchConfig.for_device(quick=args.quick or None, device=args.device, repeats=args.repeats,
                                    sizes=tuple(args.sizes) if args.sizes else None)
    if args.json.is_dir():
        raise CliError(f"{args.json} is a folder.", "Give --json a file name, e.g. bench.json.")
    report = run_benchmark(config, say=_progress, threads=args.threads, checkpoint=args.json)
    print(format_table(report))
    print(f"JSON: {write_json(report, args.json)}")
    return 0


COMMANDS = {"generate": cmd_generate, "depth": cmd_depth, "make-demo-model": cmd_make_demo_model, "bench": cmd_bench,
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

"""Headless commands: the same core functions the GUI uses."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .core.errors import D2IError
from .core.params import DEFAULT_SCHEDULER, SCHEDULERS, GenerationParams

EXIT_USAGE = 2


class CliError(D2IError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, like ours
        raise CliError(f"{message}.", f"Run '{self.prog} --help' for usage.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="d2i", description="d2i-desktop from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="repaint an image guided by its depth")
    gen.add_argument("--model", required=True, help="diffusers model folder or Hugging Face id")
    gen.add_argument("--image", required=True, type=Path)
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative", default="")
    gen.add_argument("--depth", type=Path, help="a depth map to use instead of estimating one")
    gen.add_argument("--strength", type=float, default=0.8)
    gen.add_argument("--steps", type=int, default=30)
    gen.add_argument("--guidance", type=float, default=7.5)
    gen.add_argument("--seed", type=int, default=-1, help="-1 for random (the seed used is printed)")
    gen.add_argument("--images", type=int, default=1, help="images per prompt")
    gen.add_argument("--scheduler", default=DEFAULT_SCHEDULER, help="one of: " + ", ".join(SCHEDULERS))
    gen.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")
    gen.add_argument("--out", required=True, type=Path, help="output PNG (never overwritten: a free name is chosen)")

    depth = commands.add_parser("depth", help="estimate a depth map and save it as a 16-bit PNG")
    depth.add_argument("--model", required=True)
    depth.add_argument("--image", required=True, type=Path)
    depth.add_argument("--device")
    depth.add_argument("--out", required=True, type=Path)

    demo = commands.add_parser("make-demo-model", help="build the tiny random-weight demo model")
    demo.add_argument("folder", type=Path)
    return parser


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _load(args):
    from .core.engine import Engine
    from .core.images import load_image

    loaded = load_image(args.image)
    for note in loaded.notes:
        _progress(f"note: {note}")
    engine = Engine(device=args.device)
    _progress(f"loading model {args.model} on {engine.device}…")
    info = engine.load(args.model)
    if info.is_demo:
        _progress(f"note: using the {info.label}: the picture will be noise")
    return engine, loaded


def cmd_generate(args) -> int:
    from .core.depth import load_depth
    from .core.outputs import save_unique_png

    params = GenerationParams(
        prompt=args.prompt, negative_prompt=args.negative, strength=args.strength, steps=args.steps,
        guidance_scale=args.guidance, seed=args.seed, num_images=args.images, scheduler=args.scheduler,
    ).validated()  # before the slow model load
    engine, loaded = _load(args)
    depth = None
    if args.depth:
        depth, notes = load_depth(args.depth, loaded.image.size)
        for note in notes:
            _progress(f"note: {note}")

    def on_step(info):
        _progress(f"step {info.step}/{info.total} ({info.step / max(info.elapsed, 1e-9):.2f} it/s)")

    result = engine.generate(params, loaded.image, depth, on_step=on_step)
    for index, image in enumerate(result.images):
        target = args.out if index == 0 else args.out.with_name(f"{args.out.stem}-{index}{args.out.suffix}")
        saved = save_unique_png(image, target.with_suffix(".png"), result.parameters_text(index))
        print(f"{saved}\tseed {result.seeds[index]}")
    return 0


def cmd_depth(args) -> int:
    from .core.depth import save_depth_png16

    engine, loaded = _load(args)
    _progress("estimating depth…")
    saved = save_depth_png16(engine.estimate_depth(loaded.image), args.out)
    print(saved)
    return 0


def cmd_make_demo_model(args) -> int:
    from .core.demo import DEMO_LABEL, make_demo_model

    _progress(f"building the {DEMO_LABEL} in {args.folder}…")
    print(make_demo_model(args.folder))
    return 0


COMMANDS = {"generate": cmd_generate, "depth": cmd_depth, "make-demo-model": cmd_make_demo_model}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except D2IError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Side-by-side speed benchmark: the plain diffusers pipeline, the engine's fastest settings, its low-VRAM mode.

On CUDA it uses the full-size SD2-depth architecture with random weights (same shapes and FLOPs as
the real model); elsewhere, or with quick=True, the demo model for a sanity run. Everything is
measured in one process on one device; `d2i bench` prints the table and writes the JSON.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import platform
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .core.speed.acceleration import PRESETS, PerformanceSettings
from .core.generation.engine import Engine, pick_device, pick_dtype
from .core.errors import D2IError
from .core.generation.guards import InvalidValues
from .core.generation.params import GenerationParams
from .core.generation.preview import PREVIEW_INTERVAL

PROMPT = "a lighthouse on a rocky coast at dusk, oil painting"
SEED = 1234
STRENGTH = 0.8
GUIDANCE = 7.5
COMPILE_WAIT_S = 150.0  # per image size; keeps a cold-cache GPU run inside its 8 minutes
RESTART_TIMEOUT_S = 120.0
LARGE_SIZE = 2048  # the low-VRAM preset's tiling target: this size on an 8 GB card
LARGE_STEPS = 10


@dataclass(frozen=True)
class BenchConfig:
    quick: bool
    sizes: tuple[int, ...]
    steps: int
    repeats: int
    device: str
    dtype: torch.dtype
    variants: tuple[str, ...] = ("plain", "balanced", "low VRAM", "fastest")  # run in this order: compile waits last

    @classmethod
    def for_device(cls, quick: bool | None = None, device: str | None = None, repeats: int | None = None,
                   sizes: tuple[int, ...] | None = None) -> BenchConfig:
        device = pick_device(device)
        quick = (not device.startswith("cuda")) if quick is None else quick
        return cls(quick=quick, sizes=sizes or ((96, 128) if quick else (512, 768)), steps=10 if quick else 50,
                   repeats=repeats or 2, device=device,
                   dtype=torch.float32 if quick else pick_dtype(device))


@dataclass
class SizeResult:
    it_s: float
    s_per_image: float
    ran: str = "eager"  # what ran the timed UNet steps, e.g. "CUDA graph of the eager step" or "mixed: …"


@dataclass
class VariantResult:
    name: str
    load_s: float
    depth_s: float
    first_image_s: float
    peak_gpu_mb: float | None
    sizes: dict[int, SizeResult] = field(default_factory=dict)
    compile_ready_s: float | None = None  # from load until the compiled step was ready (background)
    restart: dict | None = None  # a fresh process with the compile cache now warm: see restart_probe()
    large: dict | None = None  # low VRAM only, on CUDA: one LARGE_SIZE image, its peak memory and time
    preview_pct: float | None = None  # extra time that step previews cost, in % (first size; noisy on a shared CPU)
    in_effect: str = ""
    fallbacks: list[str] = field(default_factory=list)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def sample_photo(size: int, seed: int = 0) -> Image.Image:
    """A smooth photo-like gradient with some texture: gives the depth estimator something to see."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    pixels = np.stack([np.outer(ramp, 1 - ramp), np.outer(1 - ramp, ramp), np.outer(ramp, ramp)], axis=-1) * 255
    pixels += rng.normal(0, 12, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(im, dtype=np.float64) for im in (a, b))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def save_model(config: BenchConfig, folder: Path) -> str:
    """Build the random-weight pipeline once and save it; returns what it is, in words."""
    if config.quick:
        from .core.models.demo import DEMO_LABEL, make_demo_model
        make_demo_model(folder)
        return DEMO_LABEL
    from .core.models.full_size import FULL_SIZE_LABEL, build_full_size_pipeline
    pipe = build_full_size_pipeline(config.dtype, config.device)
    pipe.save_pretrained(folder, safe_serialization=True)
    del pipe
    _reset_memory(config.device)
    return FULL_SIZE_LABEL


def _rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else float("nan")


def _timed_runs(run: Callable[[], list[float]], repeats: int, device: str, ran: Callable[[], dict] | None = None
                ) -> SizeResult:
    """`run` makes one image and returns its step timestamps; the mean over `repeats` runs. `ran` gives the
    UNet calls so far by what ran them (UNetAccelerator.ran); without it the steps ran eagerly."""
    before = dict(ran()) if ran else {}
    rates, seconds = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        stamps = run()
        _sync(device)
        seconds.append(time.perf_counter() - started)
        rates.append(_rate(stamps))
    return SizeResult(it_s=float(np.mean(rates)), s_per_image=float(np.mean(seconds)),
                      ran=what_ran(before, ran()) if ran else "eager")


def what_ran(before: dict[str, int], after: dict[str, int]) -> str:
    """The kind of UNet step that ran between two counts, or "mixed: …" with the number of calls of each."""
    calls = {kind: after[kind] - before.get(kind, 0) for kind in after if after[kind] > before.get(kind, 0)}
    if len(calls) == 1:
        return next(iter(calls))
    return "mixed: " + ", ".join(f"{count} {kind}" for kind, count in sorted(calls.items())) if calls else "eager"


# -- (a) the plain pipeline, as its documentation shows it ------------------------------------
def bench_plain(config: BenchConfig, folder: Path, depth: dict[int, torch.Tensor], say,
                on_size: Callable[[VariantResult], None] = lambda _result: None) -> tuple[VariantResult, Image.Image]:
    from diffusers import StableDiffusionDepth2ImgPipeline

    device = config.device
    _reset_memory(device)
    warnings.filterwarnings("ignore", message="In CPU autocast")  # the pipeline's depth step on a CPU
    started = time.perf_counter()
    pipe = StableDiffusionDepth2ImgPipeline.from_pretrained(folder, dtype=config.dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    _sync(device)
    load_s = time.perf_counter() - started

    def run(size: int, **extra) -> tuple[list[float], Image.Image]:
        stamps: list[float] = []

        def on_step(_pipe, _i, _t, _tensors):
            _sync(device)
            stamps.append(time.perf_counter())
            return {}

        extra.setdefault("depth_map", depth[size])  # as the engine gets it: depth estimation is timed on its own
        image = pipe(PROMPT, image=sample_photo(size), strength=STRENGTH, num_inference_steps=config.steps,
                     callback_on_step_end=on_step, **extra).images[0]
        return stamps, image

    first_size = config.sizes[0]
    started = time.perf_counter()
    run(first_size)
    _sync(device)
    first_image_s = time.perf_counter() - started
    with torch.inference_mode():  # the pipeline's own depth step, warm
        pipe.prepare_depth_map(sample_photo(first_size), None, 1, True, config.dtype, torch.device(device))
        _sync(device)
        started = time.perf_counter()
        pipe.prepare_depth_map(sample_photo(first_size), None, 1, True, config.dtype, torch.device(device))
        _sync(device)
    result = VariantResult("plain diffusers", load_s, time.perf_counter() - started, first_image_s, None,
                           in_effect="diffusers defaults (SDPA attention)")
    for size in config.sizes:
        say(f"  plain {size}x{size}")
        if size != first_size:
            run(size)  # warm-up
        result.sizes[size] = _timed_runs(lambda: run(size)[0], config.repeats, device)
        on_size(result)
    generator = torch.Generator(device).manual_seed(SEED)
    _, reference = run(first_size, generator=generator, guidance_scale=GUIDANCE, output_type="np")
    if not np.isfinite(reference).all():
        raise InvalidValues("The plain pipeline produced invalid values (NaN or infinity), so there is nothing to compare.",
                            "Run the benchmark in another precision (fp32 or bf16).")
    reference = pipe.numpy_to_pil(reference)[0]
    result.peak_gpu_mb = _peak_mb(device)
    return result, reference  # the pipeline is freed on return; the next variant starts from a clean slate


# -- (b), (c): the engine ----------------------------------------------------------------------
def bench_engine(config: BenchConfig, folder: Path, preset: str, depth_maps: dict[int, np.ndarray], say,
                 on_size: Callable[[VariantResult], None] = lambda _result: None) -> tuple[VariantResult, Image.Image]:
    device = config.device
    _reset_memory(device)
    precision = _precision(config.dtype)
    engine = Engine(device=device, dtype=precision)
    engine.set_performance(PerformanceSettings(device=device, precision=precision).with_preset(preset))
    started = time.perf_counter()
    engine.load(folder)
    _sync(device)
    load_s = time.perf_counter() - started
    loaded_at = time.perf_counter()
    report = engine.performance_report

    params = GenerationParams(prompt=PROMPT, strength=STRENGTH, steps=config.steps, guidance_scale=GUIDANCE,
                              seed=SEED, scheduler="DDIM")

    def run(size: int, previews: bool = True) -> tuple[list[float], Image.Image]:
        stamps: list[float] = []
        on_step = (lambda _info: stamps.append(time.perf_counter())) if previews else None  # previews come with on_step
        result = engine.generate(params, sample_photo(size), depth_maps[size], on_step=on_step,
                                 preview_interval=PREVIEW_INTERVAL)
        return stamps, result.images[0]

    def until_compiled() -> None:
        if engine.accelerator is not None and not engine.accelerator.wait_until_compiled(COMPILE_WAIT_S):
            say(f"  compile still running after {COMPILE_WAIT_S:.0f} s; measuring what is ready")

    first_size = config.sizes[0]
    started = time.perf_counter()
    run(first_size)  # "Generate" pressed right after load: eager while any compile runs in the background
    _sync(device)
    first_image_s = time.perf_counter() - started
    until_compiled()
    compile_ready_s = time.perf_counter() - loaded_at
    engine.estimate_depth(sample_photo(first_size, seed=1))  # warm the estimator on another image
    started = time.perf_counter()
    engine.estimate_depth(sample_photo(first_size))
    _sync(device)
    result = VariantResult(f"engine: {preset}", load_s, time.perf_counter() - started, first_image_s, None,
                           in_effect=", ".join(report.applied), fallbacks=list(report.fallbacks))
    if engine.accelerator is not None and engine.accelerator.compiled is not None:
        result.compile_ready_s = compile_ready_s
    for size in config.sizes:
        say(f"  {preset} {size}x{size}")
        if size != first_size:
            run(size)  # asks for this shape's compile
            until_compiled()
        run(size)  # warm-up: captures the CUDA graph
        ran = (lambda: engine.accelerator.ran) if engine.accelerator is not None else None
        result.sizes[size] = _timed_runs(lambda: run(size)[0], config.repeats, device, ran)
        on_size(result)
    _, image = run(first_size)
    result.preview_pct = _preview_cost(lambda previews: run(first_size, previews), device)
    if engine.accelerator is not None and engine.accelerator.errors:
        result.fallbacks += engine.accelerator.errors
    result.peak_gpu_mb = _peak_mb(device)
    if preset == "low VRAM" and device.startswith("cuda") and not config.quick:
        say(f"  {preset} {LARGE_SIZE}x{LARGE_SIZE}")
        result.large = _large_image(engine, device)
    compiles = engine.accelerator is not None and engine.accelerator.compiled is not None
    engine.unload()
    if compiles:
        say(f"  {preset}: restart with a warm compile cache…")
        result.restart = restart_in_new_process(config, folder, preset, depth_maps[first_size])
    return result, image


def _preview_cost(run: Callable[[bool], object], device: str, pairs: int = 4) -> float:
    """Extra time of a run with step previews over one without, in %: medians of interleaved runs."""
    seconds = {True: [], False: []}
    for _ in range(pairs):
        for previews in (True, False):
            started = time.perf_counter()
            run(previews)
            _sync(device)
            seconds[previews].append(time.perf_counter() - started)
    with_previews, without = (float(np.median(seconds[flag])) for flag in (True, False))
    return 100.0 * (with_previews - without) / without


def _large_image(engine: Engine, device: str) -> dict:
    photo = sample_photo(LARGE_SIZE)
    depth = engine.estimate_depth(photo)
    params = GenerationParams(prompt=PROMPT, strength=STRENGTH, steps=LARGE_STEPS, guidance_scale=GUIDANCE, seed=SEED,
                              scheduler="DDIM")
    _reset_memory(device)
    started = time.perf_counter()
    try:
        engine.generate(params, photo, depth)
    except D2IError as exc:  # out of memory is a finding here, not a failure of the run
        return {"size": LARGE_SIZE, "steps": LARGE_STEPS, "error": exc.message}
    _sync(device)
    return {"size": LARGE_SIZE, "steps": LARGE_STEPS, "s_per_image": time.perf_counter() - started,
            "peak_gpu_mb": _peak_mb(device)}


def restart_probe(folder: str, preset: str, size: int, steps: int, depth_file: str, device: str, precision: str) -> dict:
    """In a fresh process: load, press Generate, and wait for the compiled step to be ready (from the disk cache)."""
    started = time.perf_counter()
    engine = Engine(device=device, dtype=precision)
    engine.set_performance(PerformanceSettings(device=device, precision=precision).with_preset(preset))
    engine.load(folder)
    _sync(device)
    loaded = time.perf_counter()
    params = GenerationParams(prompt=PROMPT, strength=STRENGTH, steps=steps, guidance_scale=GUIDANCE, seed=SEED,
                              scheduler="DDIM")
    depth = np.load(depth_file)
    engine.generate(params, sample_photo(size), depth)
    _sync(device)
    first = time.perf_counter()
    ready = engine.accelerator.wait_until_compiled(RESTART_TIMEOUT_S / 2) if engine.accelerator else False
    compiled = time.perf_counter()
    engine.generate(params, sample_photo(size), depth)
    _sync(device)
    return {"load_s": loaded - started, "first_image_s": first - loaded, "compiled_ready_s": compiled - loaded if ready else None,
            "first_compiled_image_s": time.perf_counter() - compiled}


def restart_in_new_process(config: BenchConfig, folder: Path, preset: str, depth: np.ndarray) -> dict:
    """restart_probe() in a child process (a real restart: nothing compiled in memory); {"error": …} if it fails."""
    import subprocess
    import sys

    depth_file = folder.parent / "restart-depth.npy"
    np.save(depth_file, depth)
    code = ("import json, sys; from d2i_desktop.bench import restart_probe; a = sys.argv[1:]; "
            "print(json.dumps(restart_probe(a[0], a[1], int(a[2]), int(a[3]), *a[4:])))")
    arguments = [str(folder), preset, str(config.sizes[0]), str(config.steps), str(depth_file), config.device,
                 _precision(config.dtype)]
    try:
        done = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True,
                              timeout=RESTART_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {RESTART_TIMEOUT_S:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["exited with " + str(done.returncode)])[-1][:300]}
    return json.loads(lines[-1])


def _precision(dtype: torch.dtype) -> str:
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]


# -- the whole run -----------------------------------------------------------------------------
def run_benchmark(config: BenchConfig, say: Callable[[str], None] = print, threads: int | None = None,
                  checkpoint: Path | None = None) -> dict:
    """Measure every variant; after each one the report so far is written to `checkpoint`, so a run cut
    short by a time limit still leaves its figures."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(config, say, checkpoint)
    finally:
        torch.set_num_threads(previous_threads)


def _run(config: BenchConfig, say: Callable[[str], None], checkpoint: Path | None) -> dict:
    wall = time.perf_counter()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="d2i-bench-") as tmp:
        folder = Path(tmp) / "model"
        say(f"building {'the demo model' if config.quick else 'the full-size SD2-depth pipeline'} with random weights…")
        model_label = save_model(config, folder)

        say("estimating the shared depth maps…")
        probe = Engine(device=config.device, dtype=_precision(config.dtype))
        probe.set_performance(probe.performance.with_preset("balanced"))
        probe.load(folder)
        depth_maps = {size: probe.estimate_depth(sample_photo(size)) for size in config.sizes}
        probe.unload()
        del probe
        depth_tensors = {size: torch.from_numpy(d)[None] for size, d in depth_maps.items()}

        variants, images = [], {}

        def save(partial: VariantResult | None = None) -> None:
            """Write the figures so far, with those of the variant being measured: a cut run keeps them."""
            if checkpoint:
                write_json(_report(config, model_label, variants + ([partial] if partial else []), images, wall),
                           checkpoint)

        for name in config.variants:
            if name == "plain":
                say("plain diffusers pipeline…")
                result, images["plain"] = bench_plain(config, folder, depth_tensors, say, save)
            elif name in PRESETS:
                say(f"engine, {name} preset…")
                result, images[name] = bench_engine(config, folder, name, depth_maps, say, save)
            else:
                raise D2IError(f"Unknown benchmark variant '{name}'.", "Use plain or a preset name.")
            variants.append(result)
            save()
    return _report(config, model_label, variants, images, wall)


def _report(config: BenchConfig, model_label: str, variants: list[VariantResult], images: dict[str, Image.Image],
            wall: float) -> dict:
    import diffusers

    quality = {name: psnr(image, images["plain"]) for name, image in images.items() if name != "plain" and "plain" in images}
    return {
        "model": model_label,
        "device": _device_name(config.device),
        "dtype": str(config.dtype).removeprefix("torch."),
        "quick": config.quick,
        "steps": config.steps,
        "strength": STRENGTH,
        "denoising_steps": int(config.steps * STRENGTH),
        "sizes": list(config.sizes),
        "depth": "depth maps given to every variant: it/s, s/img and first image exclude depth estimation (see depth s)",
        "repeats": config.repeats,
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version()},
        "variants": [_variant_dict(v) for v in variants],
        "psnr_vs_plain_db": quality,
        "wall_s": time.perf_counter() - wall,
    }


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _variant_dict(result: VariantResult) -> dict:
    data = dataclasses.asdict(result)
    data["sizes"] = {str(size): dataclasses.asdict(value) for size, value in result.sizes.items()}
    return data


def _figure(value, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):  # "inf" or "nan" from a JSON report
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value == float("inf") else "n/a"
    return f"{value:.{digits}f}"


def format_table(report: dict) -> str:
    sizes = report["sizes"]
    header = ["variant"] + [f"it/s {s}" for s in sizes] + [f"s/img {s}" for s in sizes] + \
             ["first img s", "load s", "depth s", "compiled s", "peak GPU MB", "preview %", "PSNR dB", "UNet steps ran"]
    plain_rates = next((v["sizes"] for v in report["variants"] if v["name"] == "plain diffusers"), {})
    rows = []
    for v in report["variants"]:
        preset = v["name"].removeprefix("engine: ")
        measured = {s: v["sizes"].get(str(s)) for s in sizes}  # a size is missing when the run was cut
        rates = []
        for s, figures in measured.items():
            speedup = ""
            if figures and str(s) in plain_rates and v["name"] != "plain diffusers":
                speedup = f" ({figures['it_s'] / plain_rates[str(s)]['it_s']:.1f}x)"
            rates.append(_figure(figures and figures["it_s"]) + speedup)
        ran = sorted({_short_ran(figures.get("ran", "eager")) for figures in measured.values() if figures})
        rows.append([v["name"]] + rates + [_figure(figures and figures["s_per_image"], 3) for figures in measured.values()] + [
            _figure(v["first_image_s"]), _figure(v["load_s"]), _figure(v["depth_s"], 3), _figure(v["compile_ready_s"], 1),
            _figure(v["peak_gpu_mb"], 0), _figure(v["preview_pct"], 2),
            _figure(report["psnr_vs_plain_db"].get(preset), 1) if v["name"] != "plain diffusers" else "ref",
            " / ".join(ran) or "n/a"])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [f"{report['model']} on {report['device']}, {report['dtype']}, {report['steps']} steps at strength "
             f"{report['strength']} ({report['denoising_steps']} denoising steps), mean of {report['repeats']} runs; "
             + report.get("depth", "")]
    lines += ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in [header] + rows]
    for v in report["variants"]:
        lines.append(f"{v['name']}: {v['in_effect'] or 'eager'}")
        lines += [f"    {size}: UNet steps ran as {figures.get('ran', 'eager')}" for size, figures in v["sizes"].items()
                  if figures.get("ran", "eager") != "eager"]
        lines += [f"    not used: {note}" for note in v["fallbacks"]]
        large = v.get("large")
        if large:
            lines.append(f"    {large['size']}x{large['size']}, {large['steps']} steps: " + (large.get("error") or (
                f"{_figure(large['s_per_image'])} s, peak GPU {_figure(large['peak_gpu_mb'], 0)} MB")))
        restart = v.get("restart")
        if restart:
            lines.append("    after a restart (warm compile cache): " + (restart.get("error") or (
                f"load {_figure(restart['load_s'])} s, first image {_figure(restart['first_image_s'])} s, "
                f"compiled step ready {_figure(restart['compiled_ready_s'], 1)} s after load, "
                f"first compiled image {_figure(restart['first_compiled_image_s'])} s")))
    return "\n".join(lines)


def _short_ran(ran: str) -> str:
    """What ran, in a table cell: never a fast path's name for steps that ran eagerly."""
    return {"CUDA graph of the eager step": "graph", "CUDA graph of the compiled step": "compiled+graph",
            "compiled step": "compiled"}.get(ran, "mixed" if ran.startswith("mixed") else ran)


def _strict(value):
    """JSON has no infinity or NaN: those become the strings "inf" and "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_strict(item) for item in value]
    return value


def write_json(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_strict(report), indent=2, allow_nan=False), encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m d2i_desktop.bench bench.json: the table of a (possibly cut) run's JSON
    import sys

    print(format_table(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))

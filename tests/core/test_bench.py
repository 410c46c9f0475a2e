"""`d2i bench` on the CPU: the demo model's quick run prints the table and writes complete JSON.

No figures are asserted (speed is measured, not tested); the run is checked for completeness and
for the quality check's verdict, which is exact on a CPU.
"""

import json
import math

import pytest

from PIL import Image

from d2i_desktop.cli import main
from d2i_desktop.bench import BenchConfig, format_table, psnr, restart_in_new_process, sample_photo

SIZE_FIELDS = {"it_s", "s_per_image", "ran"}
VARIANT_FIELDS = {"name", "load_s", "depth_s", "first_image_s", "peak_gpu_mb", "sizes", "compile_ready_s", "preview_pct",
                  "in_effect", "fallbacks", "restart", "large"}


def test_quick_bench_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "figures" / "bench.json"
    assert main(["bench", "--quick", "--device", "cpu", "--sizes", "64", "96", "--repeats", "1", "--threads", "1",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out

    report = json.loads(out.read_text(encoding="utf-8"), parse_constant=lambda name: 1 / 0)  # strict: no NaN/Infinity
    assert report["model"] == "demo model (random weights)" and report["quick"] and report["sizes"] == [64, 96]
    assert [v["name"] for v in report["variants"]] == ["plain diffusers", "engine: balanced", "engine: low VRAM",
                                                      "engine: fastest"]  # the one that may wait for a compile last
    for variant in report["variants"]:
        assert set(variant) == VARIANT_FIELDS
        assert set(variant["sizes"]) == {"64", "96"}
        for figures in variant["sizes"].values():
            assert set(figures) == SIZE_FIELDS and figures["it_s"] > 0 and figures["s_per_image"] > 0
            assert figures["ran"] == "eager"  # nothing is accelerated on a CPU, and the figures say so
        assert variant["load_s"] > 0 and variant["first_image_s"] > 0 and variant["depth_s"] > 0
        assert variant["peak_gpu_mb"] is None  # no GPU: shown as n/a
    # the eager engine computes exactly what the plain pipeline computes
    assert report["psnr_vs_plain_db"]["balanced"] == "inf"
    assert float(report["psnr_vs_plain_db"]["fastest"]) > 40
    assert any("CUDA" in note for note in report["variants"][3]["fallbacks"])
    assert "exclude depth estimation" in report["depth"]

    assert printed.splitlines()[-1] == f"JSON: {out}"
    table = format_table(report)
    assert table in printed
    header = table.splitlines()[1].split()
    assert header[:5] == ["variant", "it/s", "64", "it/s", "96"] and "PSNR" in header
    assert "n/a" in table and "ref" in table and "exclude depth estimation" in table.splitlines()[0]
    assert header[-3:] == ["UNet", "steps", "ran"] and all(line.rstrip().endswith("eager") for line in table.splitlines()[2:6])


def test_quick_config_is_chosen_without_cuda():
    config = BenchConfig.for_device(device="cpu")
    assert config.quick and config.sizes == (96, 128) and config.steps == 10
    full = BenchConfig.for_device(quick=False, device="cpu")
    assert full.sizes == (512, 768) and full.steps == 50


def test_psnr():
    image = sample_photo(32)
    assert psnr(image, image.copy()) == math.inf
    darker = Image.eval(image, lambda v: max(v - 4, 0))
    assert 30 < psnr(image, darker) < 40


def test_restart_probe_runs_in_a_fresh_process(demo_model_dir, tmp_path):
    import shutil

    import numpy as np

    folder = tmp_path / "model"
    shutil.copytree(demo_model_dir, folder)
    config = BenchConfig.for_device(device="cpu", sizes=(64,))
    depth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    figures = restart_in_new_process(config, folder, "fastest", depth)
    assert "error" not in figures, figures
    assert figures["load_s"] > 0 and figures["first_image_s"] > 0 and figures["first_compiled_image_s"] > 0
    assert figures["compiled_ready_s"] is None  # nothing compiles on a CPU

    broken = restart_in_new_process(config, tmp_path / "missing", "fastest", depth)
    assert "No model found" in broken["error"] or "missing" in broken["error"]


def test_a_run_cut_short_leaves_the_variants_measured_so_far(tmp_path):
    import torch

    from d2i_desktop.bench import run_benchmark

    class TimeLimit(Exception):
        pass

    def say(message):
        if message == "  balanced 96x96":
            raise TimeLimit()  # as if the time limit struck in the middle of a variant

    config = BenchConfig(quick=True, sizes=(64, 96), steps=5, repeats=1, device="cpu", dtype=torch.float32)
    checkpoint = tmp_path / "bench.json"
    with pytest.raises(TimeLimit):
        run_benchmark(config, say=say, threads=1, checkpoint=checkpoint)
    report = json.loads(checkpoint.read_text(encoding="utf-8"))
    assert [v["name"] for v in report["variants"]] == ["plain diffusers", "engine: balanced"]
    assert set(report["variants"][0]["sizes"]) == {"64", "96"} and set(report["variants"][1]["sizes"]) == {"64"}
    balanced = format_table(report).splitlines()[3].split()
    assert balanced[:2] == ["engine:", "balanced"] and balanced[4] == "n/a"  # it/s 96 (after 64's rate and speedup): not measured


def test_a_row_names_what_ran_and_never_calls_eager_steps_accelerated():
    from d2i_desktop.bench import what_ran

    assert what_ran({"eager": 3}, {"eager": 3, "CUDA graph of the eager step": 80}) == "CUDA graph of the eager step"
    assert what_ran({}, {"eager": 20}) == "eager"
    assert what_ran({"eager": 3}, {"eager": 13, "CUDA graph of the compiled step": 70}) == \
        "mixed: 70 CUDA graph of the compiled step, 10 eager"
    figures = {"it_s": 10.0, "s_per_image": 1.0}
    report = {"model": "m", "device": "d", "dtype": "float16", "steps": 50, "strength": 0.8, "denoising_steps": 40,
              "repeats": 2, "sizes": [512], "psnr_vs_plain_db": {"fastest": 30.0},
              "variants": [{"name": name, "sizes": {"512": figures | {"ran": ran}}, "first_image_s": 1.0, "load_s": 1.0,
                            "depth_s": 0.1, "compile_ready_s": None, "peak_gpu_mb": 1.0, "preview_pct": 0.0,
                            "in_effect": effect, "fallbacks": []}
                           for name, ran, effect in (("plain diffusers", "eager", "diffusers defaults"),
                                                     ("engine: fastest", "eager", "torch.compile of the UNet"))]}
    table = format_table(report)
    assert table.splitlines()[3].split()[-1] == "eager" and "graph" not in table.splitlines()[3]

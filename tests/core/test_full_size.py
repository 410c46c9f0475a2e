"""The bundled SD2-depth configs describe the real architecture: published sizes, SD2's tokenizer."""

import json

from accelerate import init_empty_weights

from d2i_desktop.core.models.full_size import SD2_DEPTH_CONFIG_DIR, build_components, load_tokenizer


def test_parts_have_the_parameter_counts_of_stable_diffusion_2_depth():
    with init_empty_weights():  # shapes only: no memory, no time
        parts = build_components()
    counts = {name: sum(p.numel() for p in model.parameters()) for name, model in parts.items()}
    # SD2's UNet has 865,910,724 weights; the depth variant's first convolution reads one more channel (+320*3*3).
    assert counts["unet"] == 865_910_724 + 320 * 9
    assert counts["vae"] == 83_653_863
    assert counts["text_encoder"] == 340_387_840  # OpenCLIP ViT-H/14 text tower, 23 of its 24 layers
    assert 120e6 < counts["depth_estimator"] < 125e6  # DPT-Hybrid MiDaS, about 123M
    assert parts["unet"].config.in_channels == 5 and parts["unet"].config.cross_attention_dim == 1024


def test_tokenizer_is_clips_bpe_vocabulary():
    tokenizer = load_tokenizer()
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer("an astronaut riding a horse").input_ids == [49406, 550, 18376, 6765, 320, 4558, 49407]


def test_pipeline_index_names_every_bundled_part():
    index = json.loads((SD2_DEPTH_CONFIG_DIR / "model_index.json").read_text())
    parts = {name for name, value in index.items() if not name.startswith("_")}
    assert parts == {"unet", "vae", "text_encoder", "tokenizer", "scheduler", "depth_estimator", "feature_extractor"}
    assert all((SD2_DEPTH_CONFIG_DIR / part).is_dir() for part in parts)

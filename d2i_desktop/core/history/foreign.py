"""What a picture says about how it was made: this app's record, else what other tools wrote (AUTOMATIC1111,
Fooocus, InvokeAI, ComfyUI, NovelAI), read with the sd-parsers library, and which of it this app can use."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from ..errors import D2IError
from ..files.images import open_image
from ..generation.depth_origin import DepthOrigin
from ..generation.params import MAX_SEED, GenerationParams, params_from_fields
from .record import read_record

_XL = re.compile(r"sdxl|xl(?![a-z])", re.IGNORECASE)  # juggernautXL_v8, sd_xl_base_1.0
_TOOLS = {"AUTOMATIC1111": "AUTOMATIC1111", "FOOOCUS": "Fooocus", "INVOKEAI": "InvokeAI", "COMFYUI": "ComfyUI",
          "NOVELAI": "NovelAI"}


@dataclass(frozen=True)
class PictureSettings:
    tool: str  # "d2i-desktop", "AUTOMATIC1111", "Fooocus", "InvokeAI", "ComfyUI", "NovelAI"
    prompt: str
    negative_prompt: str
    sampler: str  # as the tool names it
    model: str
    settings: dict  # every setting the tool wrote, as it wrote them
    params: GenerationParams  # what this app can take over
    notes: tuple[str, ...]  # what cannot be used, and why
    record: dict | None = None  # this app's full record

    def to_dict(self) -> dict:
        return asdict(self) | {"params": asdict(self.params)}

    def text(self) -> str:
        lines = [f"made with: {self.tool}", f"prompt: {self.prompt}"]
        if self.negative_prompt:
            lines.append(f"negative prompt: {self.negative_prompt}")
        lines += [f"model: {self.model or 'not recorded'}", f"sampler: {self.sampler or 'not recorded'}"]
        lines += [f"{key}: {value}" for key, value in self.settings.items() if not isinstance(value, (dict, list))]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def read_settings(path: str | Path, base: GenerationParams | None = None) -> PictureSettings:
    """The settings `path` carries; D2IError (one line) when it carries none or is not a picture."""
    base = base or GenerationParams("")
    path = Path(path)
    record = read_record(path)
    if record is not None:
        return _from_record(record, base)
    from sd_parsers import ParserManager

    with open_image(path) as image:
        image.load()  # text after the pixel data is read with the pixels
        found = ParserManager().parse(image)
    if found is None or not found.samplers:
        raise D2IError(f"{path.name} carries no generation settings this app can read.",
                       "Pictures from this app, AUTOMATIC1111, Fooocus, InvokeAI, ComfyUI and NovelAI work.")
    return _from_other_tool(found, base)


def _from_record(record: dict, base: GenerationParams) -> PictureSettings:
    import json

    params = GenerationParams.from_json(json.dumps(record["params"] | {"seed": record["seed"], "num_images": 1}))
    notes = ()
    if params.depth_estimator not in ESTIMATORS:  # older records name none (DPT-hybrid); a newer version's may be unknown
        notes = (f"Depth estimator '{params.depth_estimator}' is not known here; {DEFAULT_ESTIMATOR} is chosen.",)
        params = replace(params, depth_estimator=DEFAULT_ESTIMATOR)
    origin = DepthOrigin.from_record(record.get("depth", {}).get("origin"))
    settings = {"seed": record["seed"], "steps": params.steps, "guidance": params.guidance_scale,
                "strength": params.strength, "size": f"{record['image']['width']}x{record['image']['height']}",
                "depth map": origin.describe() if origin else "not recorded",
                "precision": record.get("precision"), "device": record.get("device", {}).get("name"),
                "made": record.get("created"), "model sha256": record["model"].get("sha256")}
    return PictureSettings("d2i-desktop", params.prompt, params.negative_prompt, params.scheduler, record["model"]["name"],
                           settings, params, notes, record)


def _from_other_tool(found, base: GenerationParams) -> PictureSettings:
    sampler = found.samplers[0]
    values = sampler.parameters
    tool = _TOOLS.get(found.generator.name, found.generator.name.title())
    model = sampler.model.name if sampler.model else ""
    prompt, negative = _text(found.full_prompt, " "), _text(found.full_negative_prompt, ", ")
    fields = {"prompt": prompt, "negative_prompt": negative, "Sampler": _sampler_name(sampler.name)}
    notes = []
    seed = str(values.get("seed", ""))
    if seed.isdigit() and int(seed) > MAX_SEED:
        notes.append(f"Seed {seed} is beyond this app's 32-bit seeds; the current seed is kept.")
        values = {key: value for key, value in values.items() if key != "seed"}
    for key, name in (("steps", "Steps"), ("cfg_scale", "CFG scale"), ("seed", "Seed"), ("denoise", "Denoising strength"),
                      ("denoising_strength", "Denoising strength")):
        if key in values:
            fields[name] = str(values[key])
    if str(values.get("scheduler", "")).lower() == "karras":
        fields["Schedule type"] = "Karras"
    params, taken_notes = params_from_fields(fields, base)
    notes += [note for note in taken_notes if not note.startswith("It was made with the model")]
    if model:
        base_model = _other_base_model(model, found.metadata)
        notes.append(f"It was made with '{model}'" + (f" ({base_model}): its prompt and seed give another picture "
                                                        "with SD2 depth." if base_model else
                                                        "; with this app's model the same seed gives another picture."))
    if len(found.samplers) > 1:
        notes.append(f"It used {len(found.samplers)} sampling passes; only the first one's settings are taken over.")
    settings = {key: value for key, value in {**values, **found.metadata}.items() if isinstance(value, (str, int, float))}
    return PictureSettings(tool, prompt, negative, sampler.name, model, settings, params,
                           tuple(notes))


def _text(value, separator: str) -> str:
    """A prompt as text: Fooocus writes lists (the styled prompt first, then its expansions)."""
    if isinstance(value, (list, tuple)):
        return value[0] if separator == " " and value else separator.join(map(str, value))
    return value or ""


def _sampler_name(name: str) -> str:
    """Fooocus' and ComfyUI's names (`dpmpp_2m_sde_gpu`, `sample_euler`) as AUTOMATIC1111 writes them."""
    name = re.sub(r"^sample_|_gpu$", "", name or "")
    return name.replace("dpmpp", "DPM++").replace("_ancestral", " a").replace("_", " ")


def _other_base_model(model: str, metadata: dict) -> str | None:
    text = " ".join([model, str(metadata.get("generation_mode", "")), str(metadata.get("model", ""))])
    if "sdxl" in text.lower() or _XL.search(model):
        return "SDXL"
    if re.search(r"v1-5|sd15|sd-1|1\.5", model, re.IGNORECASE):
        return "SD 1.5"
    return None

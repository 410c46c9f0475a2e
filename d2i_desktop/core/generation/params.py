"""Generation parameters, their validation, and the metadata text written with outputs."""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
from dataclasses import dataclass

from ..depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS, DepthSettings
from ..errors import ModelError, ParamError

# Display name -> (diffusers scheduler class, config overrides). Names follow
# AUTOMATIC1111 so the metadata's `Sampler:` field reads the same in other tools.
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": False}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"},
    ),
    "UniPC": ("UniPCMultistepScheduler", {}),
}
DEFAULT_SCHEDULER = "DPM++ 2M Karras"
MAX_SEED = 2**32 - 1
RANDOM_SEED_LIMIT = 2**31  # random seeds stay below this so every UI spin box can show them
MAX_STEPS = 500
MAX_IMAGES = 16
MAX_LORA_WEIGHT = 4.0


def _squash(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


_ALIASES = {_squash(name): name for name in SCHEDULERS} | {
    "eulerancestral": "Euler a",
    "dpmpp2m": "DPM++ 2M",
    "dpmpp2mkarras": "DPM++ 2M Karras",
    "dpmpp2msdekarras": "DPM++ 2M SDE Karras",
}


def resolve_scheduler(name: str) -> str:
    """The canonical scheduler name for `name` (case, spaces and `_`/`-` ignored)."""
    canonical = _ALIASES.get(_squash(name or ""))
    if canonical is None:
        raise ParamError(
            f"Unknown scheduler '{name}'.",
            "Choose one of: " + ", ".join(SCHEDULERS) + ".",
        )
    return canonical


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    negative_prompt: str = ""
    strength: float = 0.8
    steps: int = 30
    guidance_scale: float = 7.5
    seed: int = -1
    num_images: int = 1
    scheduler: str = DEFAULT_SCHEDULER
    loras: tuple[tuple[str, float], ...] = ()  # (library name, weight) picked in the library panel
    tile: bool = False  # a picture that repeats seamlessly (core.tiling)
    depth_estimator: str = DEFAULT_ESTIMATOR  # what estimates the depth when generation has to (core.depth.estimators)
    depth_fine_detail: bool = False

    @property
    def depth_settings(self) -> DepthSettings:
        return DepthSettings(self.depth_estimator, self.depth_fine_detail)

    def validated(self) -> "GenerationParams":
        """Return a copy with the scheduler name made canonical, or raise ParamError."""
        if not 0.0 < self.strength <= 1.0:
            raise ParamError(
                f"Strength {self.strength:g} is outside (0, 1].",
                "Use a value above 0 and at most 1 (0.8 keeps the layout and repaints the look).",
            )
        if not 1 <= self.steps <= MAX_STEPS:
            raise ParamError(f"Steps {self.steps} is outside 1..{MAX_STEPS}.", "Use 20-50 steps for most work.")
        if int(self.steps * self.strength) < 1:
            raise ParamError(
                f"{self.steps} steps at strength {self.strength:g} leave no denoising step.",
                "Raise the steps or the strength so that steps x strength is at least 1.",
            )
        if not 0.0 <= self.guidance_scale <= 50.0:
            raise ParamError(
                f"Guidance scale {self.guidance_scale:g} is outside 0..50.",
                "Use 0 or more; 5-9 is usual.",
            )
        if not -1 <= self.seed <= MAX_SEED:
            raise ParamError(f"Seed {self.seed} is outside -1..{MAX_SEED}.", "Use -1 for a random seed.")
        if not 1 <= self.num_images <= MAX_IMAGES:
            raise ParamError(f"Images per prompt {self.num_images} is outside 1..{MAX_IMAGES}.",
                             "Generate at most 16 at a time; run again for more.")
        for name, weight in self.loras:
            if not math.isfinite(weight) or abs(weight) > MAX_LORA_WEIGHT:
                raise ParamError(f"The weight {weight:g} of LoRA '{name}' is outside -{MAX_LORA_WEIGHT:g}..{MAX_LORA_WEIGHT:g}.",
                                 "Most LoRAs work best between 0.5 and 1.")
        try:
            self.depth_settings.validated()
        except ModelError as exc:
            raise ParamError(exc.message, exc.hint) from None
        return dataclasses.replace(self, scheduler=resolve_scheduler(self.scheduler))

    def resolved_seed(self) -> int:
        """The seed to use: the given one, or a fresh random one for -1."""
        return secrets.randbelow(RANDOM_SEED_LIMIT) if self.seed == -1 else self.seed

    @property
    def denoising_steps(self) -> int:
        return int(self.steps * self.strength)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "GenerationParams":
        """Parameters saved by to_json; fields this version doesn't know are ignored."""
        known = {field.name: field for field in dataclasses.fields(cls)}
        values = {key: value for key, value in json.loads(text).items() if key in known}
        return cls(**{key: tuple(map(tuple, value)) if isinstance(value, list) else value for key, value in values.items()})


def parameters_text(params: GenerationParams, seed: int, size: tuple[int, int], model_name: str,
                    extra: dict[str, str] | None = None) -> str:
    """The AUTOMATIC1111 `parameters` text, which other tools parse."""
    lines = [params.prompt]
    if params.negative_prompt:
        lines.append(f"Negative prompt: {params.negative_prompt}")
    fields = {
        "Steps": str(params.steps),
        "Sampler": params.scheduler,
        "CFG scale": f"{params.guidance_scale:g}",
        "Seed": str(seed),
        "Size": f"{size[0]}x{size[1]}",
        "Model": model_name,
        "Denoising strength": f"{params.strength:g}",
    } | ({"Tiling": "True"} if params.tile else {}) | (extra or {})
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields.items()))
    return "\n".join(lines)


def _quote(value: str) -> str:
    # A1111 quotes values that contain its separators.
    if any(ch in value for ch in ',:"\n'):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return value


def _estimator_named(text: str) -> str | None:
    """The estimator a label (as the settings text writes it) or a name stands for."""
    wanted = text.strip().lower()
    return next((name for name, spec in ESTIMATORS.items() if wanted in (name, spec.label.lower())), None)


def params_from_fields(fields: dict[str, str], base: GenerationParams) -> tuple[GenerationParams, list[str]]:
    """`base` with the settings another picture carries (parse_parameters output, AUTOMATIC1111 style).

    Returns the parameters and notes on what could not be taken over. Raises ParamError when the
    fields hold no AUTOMATIC1111 settings at all.
    """
    if not {"Steps", "Sampler", "Seed"} & fields.keys():
        raise ParamError("This picture's settings are not in the AUTOMATIC1111 format.",
                         "Pictures saved by this app or AUTOMATIC1111 (and tools that write its format) work.")
    notes: list[str] = []
    values: dict = {"prompt": fields.get("prompt", base.prompt), "negative_prompt": fields.get("negative_prompt", "")}
    for key, name, kind in (("Steps", "steps", int), ("CFG scale", "guidance_scale", float), ("Seed", "seed", int),
                            ("Denoising strength", "strength", float)):
        if key in fields:
            try:
                values[name] = kind(fields[key])
            except ValueError:
                notes.append(f"{key} '{fields[key]}' is not a number; kept {getattr(base, name)}.")
    values["tile"] = fields.get("Tiling", "").lower() == "true"
    if "Depth fine detail" in fields:
        values["depth_fine_detail"] = fields["Depth fine detail"].lower() == "true"
    if fields.get("Depth estimator"):
        named = _estimator_named(fields["Depth estimator"])
        if named is None:
            notes.append(f"Depth estimator '{fields['Depth estimator']}' is not known here; kept {base.depth_estimator}.")
        values["depth_estimator"] = named or base.depth_estimator
    sampler = fields.get("Sampler", "")
    if fields.get("Schedule type", "").lower() == "karras" and "karras" not in sampler.lower():
        sampler = f"{sampler} Karras"  # newer AUTOMATIC1111 writes the schedule separately
    if sampler:
        try:
            values["scheduler"] = resolve_scheduler(sampler)
        except ParamError:
            notes.append(f"Sampler '{sampler}' is not available here; kept {base.scheduler}.")
    if fields.get("Model"):
        notes.append(f"It was made with the model '{fields['Model']}'.")
    params = dataclasses.replace(base, **values)
    try:
        return params.validated(), notes
    except ParamError as exc:
        notes.append(f"{exc.message} Kept the current value.")
        return dataclasses.replace(params, **{k: getattr(base, k) for k in ("steps", "strength", "guidance_scale", "seed")}), notes

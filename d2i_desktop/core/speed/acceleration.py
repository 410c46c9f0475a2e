"""Performance settings: presets, and applying them to a loaded pipeline with a report of what took effect.

Options that need CUDA (offload, xformers, CUDA graphs, torch.compile) fall back with a stated
reason elsewhere; the report says what is in effect, never what was merely asked for.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from dataclasses import dataclass

import torch

from ..errors import D2IError, Fix
from ..paths import is_frozen

log = logging.getLogger(__name__)

FROZEN_COMPILE_NOTE = ("torch.compile needs a C compiler and Python headers, which the installed app does not ship; "
                       "each UNet step is recorded in a CUDA graph instead")

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
ATTENTION = ("sdpa", "xformers")
COMPILE = ("off", "cuda-graphs", "torch-compile")
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
OFFLOAD = ("none", "model", "sequential")


class SettingsError(D2IError):
    """A performance setting has a value the app does not know."""


@dataclass(frozen=True)
class PerformanceSettings:
    device: str = "auto"
    precision: str = "auto"
    attention: str = "sdpa"
    compile: str = "cuda-graphs"  # capture the UNet step: no compile wait, removes Python launch overhead
    compile_mode: str = "default"  # torch.compile's inductor mode
    channels_last: bool = False
    fuse_qkv: bool = False  # fused attention projections; skipped while LoRAs are loaded
    offload: str = "none"
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False

    def validated(self) -> PerformanceSettings:
        for name, allowed in (("device", DEVICES), ("precision", PRECISIONS), ("attention", ATTENTION),
                              ("compile", COMPILE), ("compile_mode", COMPILE_MODES), ("offload", OFFLOAD)):
            value = getattr(self, name)
            if value not in allowed:
                raise SettingsError(f"Unknown {name.replace('_', ' ')} '{value}'.", "Choose one of: " + ", ".join(allowed) + ".")
        return self

    def with_preset(self, name: str) -> PerformanceSettings:
        """The preset's speed options; device and precision are kept."""
        if name not in PRESETS:
            raise SettingsError(f"Unknown preset '{name}'.", "Choose one of: " + ", ".join(PRESETS) + ".")
        return dataclasses.replace(PRESETS[name], device=self.device, precision=self.precision)

    def with_fix(self, fix: Fix) -> PerformanceSettings:
        """These settings with `fix` applied: its preset first, then its changes."""
        base = self.with_preset(fix.preset) if fix.preset else self
        return dataclasses.replace(base, **fix.changes).validated()

    @property
    def preset(self) -> str:
        """The preset these settings match, or "custom"."""
        for name in PRESETS:
            if self.with_preset(name) == self:
                return name
        return "custom"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PerformanceSettings:
        """From stored values (QSettings gives strings like "true"); unknown keys are ignored."""
        kwargs = {}
        for field in dataclasses.fields(cls):
            if field.name not in values or values[field.name] is None:
                continue
            value = values[field.name]
            if field.type in (bool, "bool"):
                value = value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
            kwargs[field.name] = value if isinstance(value, bool) else str(value)
        return cls(**kwargs).validated()


PRESETS: dict[str, PerformanceSettings] = {
    "fastest": PerformanceSettings(compile="torch-compile", channels_last=True, fuse_qkv=True),
    "balanced": PerformanceSettings(),
    # No attention slicing: PyTorch's memory-efficient SDPA kernels already avoid the big attention matrix,
    # which slicing would build piece by piece (and 2048x2048 needs more than 8 GB that way).
    "low VRAM": PerformanceSettings(compile="off", offload="model", vae_slicing=True, vae_tiling=True),
}
DEFAULT_PRESET = "balanced"


@dataclass(frozen=True)
class PerformanceReport:
    requested: PerformanceSettings
    effective: PerformanceSettings
    applied: tuple[str, ...]
    fallbacks: tuple[str, ...]  # "what: why", one per option that could not be honoured

    def summary(self) -> str:
        lines = ["In effect: " + (", ".join(self.applied) or "plain eager PyTorch")]
        lines += [f"Not used: {note}" for note in self.fallbacks]
        return "\n".join(lines)


def available_devices() -> tuple[str, ...]:
    """The device choices this machine offers ("auto" first, "cpu" last)."""
    found = ["cuda"] if torch.cuda.is_available() else []
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return ("auto", *found, "cpu")


def xformers_available() -> bool:
    return importlib.util.find_spec("xformers") is not None


def has_adapters(module: torch.nn.Module) -> bool:
    """True when PEFT adapters (LoRAs) are injected into `module`."""
    return bool(adapter_signature(module))


def adapter_signature(module: torch.nn.Module) -> tuple:
    """Which adapters are active in `module` and with which weights: changes whenever a LoRA is loaded or re-weighted."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return ()
    return tuple(
        (name, tuple(layer.active_adapters), tuple(sorted(getattr(layer, "scaling", {}).items())),
         bool(layer.merged), bool(layer.disable_adapters))
        for name, layer in module.named_modules() if isinstance(layer, BaseTunerLayer)
    )


def checked_unet_change(pipe, change, undo, option: str, fall_back) -> bool:
    """Make `change` to the UNet only if its output stays finite and equal to before on two probe inputs.

    Probes are tiny (an 8x8 latent), so the check costs four small UNet calls when the option is set.
    """
    from .unet_accel import compare, other_inputs

    unet = pipe.unet
    config = unet.config
    generator = torch.Generator().manual_seed(0)
    first = (torch.randn(2, config.in_channels, 8, 8, generator=generator), torch.tensor(500),
             torch.randn(2, 77, config.cross_attention_dim, generator=generator))
    probes = [tuple(t.to(pipe._execution_device, unet.dtype if t.is_floating_point() else t.dtype) for t in probe)
              for probe in (first, other_inputs(*first))]
    with torch.inference_mode():
        before = [unet(*probe, return_dict=False)[0] for probe in probes]
        change()
        why = next(filter(None, (compare(unet(*probe, return_dict=False)[0], reference)
                                 for probe, reference in zip(probes, before))), None)
    if why:
        undo()
        log.warning("%s rejected: its UNet output %s", option, why)
        fall_back(option, False, f"rejected: the UNet's output with it {why}")
    return why is None


def apply_performance(pipe, settings: PerformanceSettings, device: str, current_offload: str | None = None
                      ) -> PerformanceReport:
    """Apply `settings` to a loaded pipeline and say what took effect.

    Attention, fusion, slicing, tiling and memory format are switched both ways, so this may run
    again on the same pipeline. Offload is set up on a fresh pipeline only (`current_offload` None);
    on one in use it stays `current_offload`, since changing it takes a reload. Compilation is only
    decided here; the engine runs it.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    settings = settings.validated()
    cuda = device.startswith("cuda")
    effective = {}
    applied: list[str] = []
    fallbacks: list[str] = []

    def fall_back(option: str, value, why: str) -> None:
        effective[option] = value
        fallbacks.append(f"{option.replace('_', ' ')}: {why}")

    if settings.offload != "none" and not cuda:
        fall_back("offload", "none", "needs a CUDA GPU; the model stays where it is")
    elif current_offload is not None and settings.offload != current_offload:
        fall_back("offload", current_offload, "changing it takes a model reload")
    elif settings.offload != "none" and current_offload is None:
        if settings.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.enable_sequential_cpu_offload(device=device)
    offloaded = effective.get("offload", settings.offload) != "none"
    if offloaded:
        applied.append(f"{effective.get('offload', settings.offload)} CPU offload")

    unet = pipe.unet
    unet.set_attn_processor(AttnProcessor2_0())  # from any earlier state: xformers, fused or sliced
    attention = "PyTorch SDPA attention"
    if settings.attention == "xformers":
        if not cuda:
            fall_back("attention", "sdpa", "xformers runs on CUDA only; using PyTorch SDPA")
        elif not xformers_available():
            fall_back("attention", "sdpa", "xformers is not installed; using PyTorch SDPA")
        else:
            try:
                unet.enable_xformers_memory_efficient_attention()
                attention = "xformers attention"
            except Exception as exc:  # noqa: BLE001 - e.g. a wheel built for another torch: SDPA does the same job
                log.warning("xformers cannot be used", exc_info=True)
                unet.set_attn_processor(AttnProcessor2_0())
                fall_back("attention", "sdpa", f"xformers cannot be used here ({type(exc).__name__}: "
                                               f"{str(exc).splitlines()[0][:160] if str(exc) else 'no details'}); "
                                               "using PyTorch SDPA")
    applied.append(attention)

    if settings.fuse_qkv:
        if has_adapters(unet):
            fall_back("fuse_qkv", False, "off while LoRAs are loaded (they adapt the separate projections)")
        elif attention != "PyTorch SDPA attention":
            fall_back("fuse_qkv", False, "works with PyTorch SDPA attention only")
        elif settings.attention_slicing:
            fall_back("fuse_qkv", False, "off while attention slicing is on")
        elif checked_unet_change(pipe, lambda: unet.fuse_qkv_projections(), lambda: unet.set_attn_processor(AttnProcessor2_0()),
                                 "fuse_qkv", fall_back):
            applied.append("fused attention projections")

    if settings.attention_slicing:
        pipe.enable_attention_slicing("auto")
        applied.append("attention slicing")

    vae = pipe.vae
    vae.enable_slicing() if settings.vae_slicing else vae.disable_slicing()
    vae.enable_tiling() if settings.vae_tiling else vae.disable_tiling()
    applied += [name for name, on in (("VAE slicing", settings.vae_slicing), ("VAE tiling", settings.vae_tiling)) if on]

    if not offloaded:  # offload hooks own the weights' placement
        unet.to(memory_format=torch.contiguous_format)
        if settings.channels_last and checked_unet_change(
                pipe, lambda: unet.to(memory_format=torch.channels_last),
                lambda: unet.to(memory_format=torch.contiguous_format), "channels_last", fall_back):
            applied.append("channels-last UNet")
    elif settings.channels_last:
        fall_back("channels_last", False, "not combined with CPU offload")

    if settings.compile != "off":
        if not cuda and settings.compile == "cuda-graphs":
            fall_back("compile", "off", "CUDA graphs need a CUDA GPU; running eagerly")
        elif not cuda:
            fall_back("compile", "off", "torch.compile is used on CUDA only (on a CPU its compile time outweighs the gain); "
                                        "running eagerly")
        elif offloaded:
            fall_back("compile", "off", "not combined with CPU offload (the weights move between devices)")
        elif settings.compile == "torch-compile" and is_frozen():
            fall_back("compile", "cuda-graphs", FROZEN_COMPILE_NOTE)
            applied.append("CUDA graphs of the UNet step")
        else:
            applied.append("CUDA graphs of the UNet step" if settings.compile == "cuda-graphs"
                           else f"torch.compile ({settings.compile_mode}) of the UNet, with CUDA graphs")

    report = PerformanceReport(settings, dataclasses.replace(settings, **effective), tuple(applied), tuple(fallbacks))
    log.info("performance settings: %s", report.summary().replace("\n", "; "))
    return report

"""Applying LoRAs and embeddings to a loaded pipeline: checked first, then all or nothing.

LoRAs go through diffusers' adapter API (peft): each file is loaded once as a
named adapter and stays loaded; a run activates the ones it asks for with
their weights (`set_adapters`) or disables them all, so changing weights or
the set of LoRAs never reloads the model, and a run without LoRAs computes
exactly what it computed before any was loaded. Embeddings are loaded while a
prompt uses their token and unloaded afterwards, so the tokenizer is left as
it was.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ParamError
from ..generation.params import MAX_LORA_WEIGHT
from .library import EMBEDDING, LORA, Library, LibraryItem
from .lora_files import (
    LibraryFileError, embedding_shape, embedding_vectors, family_of_width, is_lora_key, load_weights, lora_modules,
)

log = logging.getLogger(__name__)

LORA_TAG = re.compile(r"<lora:([^:<>]+)(?::([^<>]*))?>", re.IGNORECASE)
_COMPONENTS = ("unet", "text_encoder")
KEEP_LOADED = 8  # unused LoRAs beyond this many are unloaded, least recently used first


# -- what a run asks for -----------------------------------------------------------------
def split_lora_tags(text: str) -> tuple[str, list[tuple[str, float | None]]]:
    """`text` without its `<lora:name:weight>` tags, and the tags' (name, weight); weight None means the default."""
    tags = []
    for match in LORA_TAG.finditer(text):
        name, weight = match.group(1).strip(), match.group(2)
        tags.append((name, None if weight is None or not weight.strip() else parse_weight(weight, name)))
    clean = LORA_TAG.sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", clean).strip(), tags


def parse_weight(text: str, name: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise ParamError(f"The weight '{text}' of LoRA '{name}' is not a number.",
                         "Write it as <lora:name:0.8> (one weight; separate text-encoder weights are not supported).") from None
    return check_weight(weight, name)


def check_weight(weight: float, name: str) -> float:
    if not math.isfinite(weight) or abs(weight) > MAX_LORA_WEIGHT:
        raise ParamError(f"The weight {weight:g} of LoRA '{name}' is outside -{MAX_LORA_WEIGHT:g}..{MAX_LORA_WEIGHT:g}.",
                         "Most LoRAs work best between 0.5 and 1.")
    return weight


@dataclass(frozen=True)
class Extras:
    """The LoRAs and embeddings one run uses, and the prompts as sent and as recorded."""
    prompt: str  # sent to the model: LoRA tags removed
    negative_prompt: str
    recorded_prompt: str  # AUTOMATIC1111 style: every LoRA used appears as <lora:name:weight>
    loras: tuple[tuple[LibraryItem, float], ...] = ()
    embeddings: tuple[LibraryItem, ...] = ()

    def metadata_fields(self) -> dict[str, str]:
        fields = {}
        if self.loras:
            fields["Lora hashes"] = ", ".join(f"{item.name}: {item.short_hash}" for item, _ in self.loras)
        if self.embeddings:
            fields["TI hashes"] = ", ".join(f"{item.name}: {item.short_hash}" for item in self.embeddings)
        return fields


def resolve_extras(prompt: str, negative_prompt: str, loras: Sequence[tuple[str, float]], library: Library) -> Extras:
    """Find the LoRAs asked for (`loras`, already validated, and prompt tags) and the embeddings the prompts mention."""
    clean, tags = split_lora_tags(prompt)
    clean_negative, negative_tags = split_lora_tags(negative_prompt)
    if negative_tags:
        raise ParamError("LoRA tags work in the prompt, not in the negative prompt.",
                         f"Move <lora:{negative_tags[0][0]}:…> to the prompt.")
    wanted: dict[str, float | None] = {}
    for name, weight in [*tags, *loras]:  # the order the recorded prompt shows them in
        if name in wanted and None not in (weight, wanted[name]) and weight != wanted[name]:
            raise ParamError(f"LoRA '{name}' is asked for twice, with weights {wanted[name]:g} and {weight:g}.",
                             "Keep one: untick it in the library or remove its tag from the prompt.")
        if wanted.get(name) is None:
            wanted[name] = weight
    chosen = []
    for name, weight in wanted.items():
        item = library.find(name, LORA)
        chosen.append((item, item.default_weight if weight is None else weight))
    tagged = {name for name, _ in tags}
    recorded = " ".join([prompt.strip(), *(f"<lora:{item.name}:{weight:g}>" for item, weight in chosen
                                           if item.name not in tagged)]).strip()
    used = tuple(item for item in library.embeddings() if mentions(clean, item.name) or mentions(clean_negative, item.name))
    return Extras(clean, clean_negative, recorded, tuple(chosen), used)


def mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


# -- the pipeline side -------------------------------------------------------------------
@dataclass(frozen=True)
class _Layer:
    name: str
    in_features: int
    out_features: int
    kernel: tuple[int, ...]  # () for a linear layer


def _layer_index(model) -> tuple[dict[str, _Layer], dict[str, str]]:
    """The model's linear and conv layers by name, and kohya's underscored names -> real names."""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            layers[name] = _Layer(name, module.in_features, module.out_features, ())
        elif isinstance(module, torch.nn.Conv2d):
            layers[name] = _Layer(name, module.in_channels, module.out_channels, tuple(module.kernel_size))
    return layers, {name.replace(".", "_"): name for name in layers}


def adapter_name(item: LibraryItem) -> str:
    return f"lora_{item.short_hash}"  # by content: a changed file is a new adapter


class Adapters:
    """The LoRAs and embeddings applied to one pipeline. Create it right after loading, before any LoRA."""

    def __init__(self, pipe, model_name: str):
        self.pipe = pipe
        self.model_name = model_name
        self.model_family = family_of_width(pipe.unet.config.cross_attention_dim)
        self._layers = {component: _layer_index(getattr(pipe, component)) for component in _COMPONENTS}
        self._loaded: dict[str, None] = {}  # adapter names, least recently used first
        self._active: tuple[tuple[str, float], ...] = ()
        self._embeddings: dict[str, tuple[str, tuple[str, ...]]] = {}  # name -> (hash, tokens)

    @property
    def state_key(self) -> tuple:
        """Changes whenever what the text encoder or UNet compute changes (for caches of prompt embeddings)."""
        return self._active, tuple(self._loaded), tuple(sorted((name, entry[0]) for name, entry in self._embeddings.items()))

    def apply(self, loras: Sequence[tuple[LibraryItem, float]], embeddings: Sequence[LibraryItem] = ()) -> None:
        """Make exactly these LoRAs (with these weights) and embeddings active. On any failure nothing changes."""
        new_loras = {}
        for item, _ in loras:
            name = adapter_name(item)
            if name not in self._loaded and name not in new_loras:
                new_loras[name] = self.prepare_lora(item)
        to_load = [item for item in embeddings if self._embeddings.get(item.name, ("",))[0] != item.short_hash]
        staying = {item.name for item in embeddings} - {item.name for item in to_load}
        taken = {token for name in staying for token in self._embeddings[name][1]}
        new_embeddings = []
        for item in to_load:
            vectors = self.prepare_embedding(item, taken)
            taken |= set(_tokens(item.name, vectors.shape[0]))
            new_embeddings.append((item, vectors))
        # Everything is checked; only now does the pipeline change. Embeddings this run does not use go first
        # (they only matter to prompts that name them, so they are not put back on failure).
        for name in set(self._embeddings) - staying:
            self._unload_embedding(name)
        added_adapters, added_embeddings = [], []
        try:
            for name, (item, state) in new_loras.items():
                self.load_lora(name, item, state)
                added_adapters.append(name)
            for item, vectors in new_embeddings:
                self._load_embedding(item, vectors)
                added_embeddings.append(item.name)
            self._activate(tuple((adapter_name(item), weight) for item, weight in loras))
        except Exception:
            for name in added_adapters:
                self._delete_adapter(name)
            for name in added_embeddings:
                self._unload_embedding(name)
            self._activate(self._active)
            raise
        self._forget_unused()

    def _forget_unused(self) -> None:
        active = {name for name, _ in self._active}
        for name in active:
            self._loaded[name] = self._loaded.pop(name)  # most recently used last
        unused = [name for name in self._loaded if name not in active]
        for name in unused[:max(0, len(self._loaded) - KEEP_LOADED)]:
            self._delete_adapter(name)

    # -- checks (the pipeline is not touched) --------------------------------------------
    def prepare_lora(self, item: LibraryItem) -> tuple[LibraryItem, dict[str, torch.Tensor]]:
        """Read `item`, check every layer against the loaded model, and return it in diffusers' peft layout."""
        data = load_weights(item.path)
        if not isinstance(data, dict) or not any(is_lora_key(str(key)) for key in data):
            raise LibraryFileError(f"{item.path.name} is not a LoRA.", "Check that the file is a LoRA.")
        state = {}
        for module in lora_modules(data, item.path.name):
            layer = self._find_layer(module, item)
            down, up = module.parts["down"], module.parts["up"]
            problem = _shape_problem(down, up, layer)
            if problem:
                raise self._refusal(item, f"layer '{module.raw_name}' {problem}")
            if not (torch.isfinite(down).all() and torch.isfinite(up).all()):
                raise LibraryFileError(f"{item.path.name} is damaged: layer '{module.raw_name}' holds NaN or infinite values.",
                                       "Download the file again.")
            alpha = module.parts.get("alpha")
            if alpha is not None and (not isinstance(alpha, torch.Tensor) or alpha.numel() != 1
                                      or not torch.isfinite(alpha).all()):
                raise LibraryFileError(f"{item.path.name} is damaged: layer '{module.raw_name}' has an alpha that is not "
                                       "one finite number.", "Download the file again.")
            scale = float(alpha) / down.shape[0] if alpha is not None else 1.0  # kohya's alpha / rank
            dtype = getattr(self.pipe, module.component).dtype
            state[f"{module.component}.{layer.name}.lora_A.weight"] = down.to(dtype).contiguous()
            state[f"{module.component}.{layer.name}.lora_B.weight"] = (up.float() * scale).to(dtype).contiguous()
        if not state:
            raise LibraryFileError(f"{item.path.name} holds no LoRA layers.", "Check that the file is a LoRA.")
        return item, state

    def _find_layer(self, module, item: LibraryItem) -> _Layer:
        if module.component not in self._layers:
            raise self._refusal(item, f"it adapts a '{module.component}', which this model does not have")
        layers, kohya_names = self._layers[module.component]
        raw = module.raw_name
        if module.kohya:
            candidates = [kohya_names.get(raw), kohya_names.get(raw.removeprefix("text_model_"))]
        else:  # recent transformers dropped CLIP's `text_model.` level; files from older ones keep it
            candidates = [raw, raw.removeprefix("text_model."), f"text_model.{raw}"]
        for candidate in candidates:
            if candidate in layers:
                return layers[candidate]
        raise self._refusal(item, f"it adapts a layer '{raw}' that the model does not have")

    def _refusal(self, item: LibraryItem, detail: str) -> LibraryFileError:
        made_for = item.base_model
        if made_for and made_for != self.model_family:
            article = "an" if item.kind == EMBEDDING else "a"
            return LibraryFileError(
                f"{item.name} is {article} {item.kind} for {made_for}; the loaded model is {self.model_name}.",
                f"Use {article} {item.kind} made for {self.model_family}.")
        return LibraryFileError(f"{item.name} does not fit the loaded model: {detail}.",
                                "It was probably made for another base model.")

    def prepare_embedding(self, item: LibraryItem, taken: set[str] = frozenset()) -> torch.Tensor:
        """Read `item`'s vectors; check their width, and its tokens against the vocabulary and the `taken` tokens."""
        vectors = embedding_vectors(load_weights(item.path), item.path.name)
        if "clip_g" in vectors:
            raise self._refusal(item, "it holds vectors for two text encoders")
        count, width = embedding_shape(vectors)
        hidden = self.pipe.text_encoder.get_input_embeddings().weight.shape[1]
        if width != hidden:
            raise LibraryFileError(
                f"{item.name} is an embedding for {family_of_width(width)} ({width}-wide vectors); "
                f"the loaded model is {self.model_name} ({hidden}-wide).",
                f"Use an embedding made for {self.model_family}.")
        tensor = vectors["clip_l"].detach().float().reshape(count, width)
        if not torch.isfinite(tensor).all():
            raise LibraryFileError(f"{item.path.name} is damaged: it holds NaN or infinite values.", "Download the file again.")
        if not re.fullmatch(r"[^\s<>,]+", item.name):
            raise LibraryFileError(f"The embedding name '{item.name}' cannot be written as one prompt word.",
                                   "Rename the file without spaces, commas or angle brackets.")
        loaded = {token for _, tokens in self._embeddings.values() for token in tokens}  # unloaded before loading
        vocab = self.pipe.tokenizer.get_vocab()
        for token in _tokens(item.name, count):
            if token in taken:
                raise LibraryFileError(f"The embedding '{item.name}' clashes with another embedding's token '{token}'.",
                                       "Rename one of the two files.")
            if token not in loaded and (token in vocab or f"{token}</w>" in vocab):
                raise LibraryFileError(f"The embedding name '{token}' is already a word the model knows.",
                                       "Rename the file to something distinctive (its name is the word you write in the prompt).")
        return tensor

    # -- changing the pipeline -------------------------------------------------------------
    def load_lora(self, name: str, item: LibraryItem, state: dict[str, torch.Tensor]) -> None:
        """Load a checked LoRA as adapter `name`, inactive. All or nothing: if any component fails, none keeps it."""
        try:
            with warnings.catch_warnings():  # peft's notes on adding and switching adapters are expected here
                warnings.simplefilter("ignore", UserWarning)
                self.pipe.load_lora_weights(state, adapter_name=name)
        except Exception as exc:
            log.exception("loading LoRA %s failed", item.path)
            self._delete_adapter(name)
            self._activate(self._active)
            raise LibraryFileError(f"{item.name} could not be applied: {str(exc).splitlines()[0][:200]}",
                                   "The model was left as it was.") from exc
        self._loaded[name] = None
        self._activate(self._active)  # diffusers activates what it loads

    def _delete_adapter(self, name: str) -> None:
        """Remove adapter `name` from every component that got it, even partly."""
        from diffusers.utils.peft_utils import delete_adapter_layers

        for component in _COMPONENTS:
            model = getattr(self.pipe, component)
            if name in (getattr(model, "peft_config", None) or {}):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    if component == "unet":
                        model.delete_adapters(name)
                    else:
                        delete_adapter_layers(model, name)
                        model.peft_config.pop(name, None)
        self._loaded.pop(name, None)

    def _activate(self, active: tuple[tuple[str, float], ...]) -> None:
        if active:
            self.pipe.enable_lora()
            self.pipe.set_adapters([name for name, _ in active], [weight for _, weight in active])
        elif self._loaded:
            self.pipe.disable_lora()
        self._active = active

    def _load_embedding(self, item: LibraryItem, vectors: torch.Tensor) -> None:
        self.pipe.load_textual_inversion({item.name: vectors}, token=item.name)
        self._embeddings[item.name] = (item.short_hash, _tokens(item.name, vectors.shape[0]))

    def _unload_embedding(self, name: str) -> None:
        _, tokens = self._embeddings.pop(name)
        self.pipe.unload_textual_inversion(list(tokens))


def _tokens(name: str, count: int) -> tuple[str, ...]:
    """The tokens diffusers adds for a `count`-vector embedding called `name`."""
    return (name, *(f"{name}_{i}" for i in range(1, count)))


def _shape_problem(down, up, layer: _Layer) -> str:
    if down.ndim != up.ndim or down.ndim not in (2, 4) or (down.ndim == 4) != bool(layer.kernel):
        return f"has {down.ndim}-d weights for a {'conv' if layer.kernel else 'linear'} layer"
    if down.shape[0] == 0 or up.shape[1] == 0:
        return "has rank 0 (no weights)"
    if down.ndim == 4 and (tuple(down.shape[2:]) != layer.kernel or tuple(up.shape[2:]) != (1, 1)):
        return (f"has {'x'.join(map(str, down.shape[2:]))} and {'x'.join(map(str, up.shape[2:]))} kernels for a "
                f"{'x'.join(map(str, layer.kernel))} conv layer")
    if down.shape[1] != layer.in_features or up.shape[0] != layer.out_features:
        return (f"maps {down.shape[1]} -> {up.shape[0]} features where the model's layer maps "
                f"{layer.in_features} -> {layer.out_features}")
    if down.shape[0] != up.shape[1]:
        return f"has mismatched ranks ({down.shape[0]} and {up.shape[1]})"
    return ""



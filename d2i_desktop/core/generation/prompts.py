"""Prompt weighting and long prompts, with AUTOMATIC1111's rules.

`(word)` multiplies a word's weight by 1.1, `((word))` by 1.21, `(word:1.3)` sets
1.3 times, `[word]` divides by 1.1; `\\(` `\\)` `\\[` `\\]` are plain brackets;
`BREAK` starts a new 75-token chunk. A prompt longer than one chunk is encoded
chunk by chunk (each one `<start> 75 tokens <end>` through the text encoder as
the pipeline calls it) and the chunks are concatenated. Weights multiply the
token embeddings, then each chunk is scaled back to its original mean (unless
that mean is zero but for rounding, as after a layer norm without bias).
Stray closing brackets are text and unclosed ones weigh to the end, as in
AUTOMATIC1111; both are noted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from ..errors import ParamError

MAX_WEIGHT = 10.0
ROUND = 1.1
COMMA_BACKTRACK = 20  # a full chunk breaks after its last comma when that is this close to the end

_ATTENTION = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|
\(|\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|]|
[^\\()\[\]:]+|
:
""", re.X)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


@dataclass(frozen=True)
class Parsed:
    pieces: tuple[tuple[str, float], ...]  # (text, weight); BREAK is ("", -1.0)
    notes: tuple[str, ...] = ()


def parse(text: str, name: str = "prompt") -> Parsed:
    """`text` as (piece, weight) runs, AUTOMATIC1111's parse_prompt_attention; raises ParamError for a bad weight."""
    pieces: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []
    stray: list[str] = []

    def multiply(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            pieces.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif weight is not None and round_open:
            multiply(round_open.pop(), _weight(weight))
        elif token == ")" and round_open:
            multiply(round_open.pop(), ROUND)
        elif token == "]" and square_open:
            multiply(square_open.pop(), 1 / ROUND)
        else:
            if token in (")", "]") or weight is not None:
                stray.append(token.strip()[-1])
            for i, part in enumerate(_BREAK.split(token)):
                if i:
                    pieces.append(["", -1.0])
                pieces.append([part, 1.0])
    for start in round_open:
        multiply(start, ROUND)
    for start in square_open:
        multiply(start, 1 / ROUND)
    notes = []
    if stray:
        notes.append(f"The {name} has {len(stray)} closing bracket(s) without an opening one; they were read as text.")
    if round_open or square_open:
        notes.append(f"The {name} has {len(round_open) + len(square_open)} bracket(s) left open; "
                     "they weigh everything after them.")
    merged: list[list] = []
    for piece in pieces:
        if merged and merged[-1][1] == piece[1] and piece[1] != -1.0:
            merged[-1][0] += piece[0]
        else:
            merged.append(piece)
    return Parsed(tuple((text, weight) for text, weight in merged if text or weight == -1.0) or (("", 1.0),),
                  tuple(notes))


def _weight(text: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise ParamError(f"The prompt weight '{text}' is not a number.", "Write weights as (word:1.2).") from None
    if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
        raise ParamError(f"The prompt weight {weight:g} is outside -{MAX_WEIGHT:g}..{MAX_WEIGHT:g}.",
                         "Weights between 0.5 and 1.5 are usual.")
    return weight


def _chunks(pipe, parsed: Parsed) -> list[tuple[list[int], list[float]]]:
    """The tokens and weights of each chunk (without start and end tokens), AUTOMATIC1111's tokenize_line."""
    size = pipe.tokenizer.model_max_length - 2
    comma = pipe.tokenizer.convert_tokens_to_ids(",</w>")
    chunks: list[tuple[list[int], list[float]]] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close(keep: int) -> None:
        nonlocal tokens, weights, last_comma
        chunks.append((tokens[:keep], weights[:keep]))
        tokens, weights, last_comma = tokens[keep:], weights[keep:], -1

    for text, weight in parsed.pieces:
        if weight == -1.0:  # BREAK
            close(len(tokens))
            continue
        text = pipe.maybe_convert_prompt(text, pipe.tokenizer)  # multi-vector embeddings
        for token in pipe.tokenizer(text, add_special_tokens=False).input_ids:
            if token == comma:
                last_comma = len(tokens)
            elif len(tokens) == size and last_comma != -1 and len(tokens) - last_comma <= COMMA_BACKTRACK:
                close(last_comma + 1)
            if len(tokens) == size:
                close(size)
            tokens.append(token)
            weights.append(weight)
    if tokens or not chunks:
        close(len(tokens))
    return chunks


def _encode_chunk(pipe, tokens: list[int], weights: list[float], device) -> torch.Tensor:
    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    length = tokenizer.model_max_length
    ids = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id]
    mask = [1] * len(ids) + [0] * (length - len(ids))
    ids += [tokenizer.pad_token_id] * (length - len(ids))
    use_mask = getattr(encoder.config, "use_attention_mask", False)
    z = encoder(torch.tensor([ids], device=device),
                attention_mask=torch.tensor([mask], device=device) if use_mask else None)[0]
    if any(weight != 1.0 for weight in weights):
        factors = torch.tensor([1.0, *weights, *[1.0] * (length - len(weights) - 1)], device=device, dtype=z.dtype)
        original_mean = z.mean()
        z = z * factors[None, :, None]
        noise = 1e-4 * z.abs().mean()  # a mean this small is rounding (a layer norm without bias): nothing to restore
        if original_mean.abs() > noise and z.mean().abs() > noise:
            z = z * (original_mean / z.mean())
    return z


def encode(pipe, prompt: str, negative: str, device) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """(positive, negative) embeddings with weights and long prompts, and notes on the prompts' brackets."""
    parsed = [parse(prompt), parse(negative, "negative prompt")]
    chunked = [_chunks(pipe, one) for one in parsed]
    count = max(map(len, chunked))
    embeddings = []
    for chunks in chunked:
        chunks = chunks + [([], [])] * (count - len(chunks))  # both sides need as many chunks
        z = torch.cat([_encode_chunk(pipe, tokens, weights, device) for tokens, weights in chunks], dim=1)
        embeddings.append(z.to(dtype=pipe.text_encoder.dtype, device=device))
    return embeddings[0], embeddings[1], parsed[0].notes + parsed[1].notes

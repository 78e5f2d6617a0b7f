"""Tiny, deterministic, offline tokenizers for the tiny pipelines in :mod:`tests.families`.

The real checkpoints' tokenizers live on the Hub; these are built in code, in a few milliseconds,
with the same ``transformers`` class, pre-tokenizer, special tokens and ``model_max_length`` as the
real ones, but a vocabulary of a few hundred tokens: (almost) one token per character or byte, so
the token count of a prompt is predictable.

Each one is built through its class's own constructor (``vocab=`` / ``merges=``), because that is
also how ``transformers`` 5 rebuilds it from ``tokenizer.json`` in ``from_pretrained``: a tokenizer
saved by a pipeline and loaded back encodes exactly as the one built here.

* :func:`clip_tokenizer` — CLIP byte-level BPE with no merges (:func:`tests.tiny_model.write_tokenizer_files`):
  ``n`` characters are ``n`` tokens, plus ``<|startoftext|>`` and ``<|endoftext|>``.
* :func:`t5_tokenizer` — T5 SentencePiece Unigram: ``▁``, printable ASCII and Latin-1. Like the real
  T5 (which has no byte fallback) a character outside the vocabulary becomes ``<unk>`` (runs of them
  fuse into one), so Korean or emoji tokenize, lossily. Ends with ``</s>``; ``<pad>`` is id 0.
* :func:`qwen2_tokenizer` — Qwen2 byte-level BPE with no merges (one token per UTF-8 byte, so any
  text round-trips), Qwen's chat specials and a Qwen3-style ``chat_template`` honouring
  ``enable_thinking``.
* :func:`gemma_tokenizer` — Gemma SentencePiece BPE with byte fallback: ``▁`` and printable ASCII,
  any other character becomes its UTF-8 bytes ``<0x..>``; starts with ``<bos>``. Unlike the others it
  also has whole-word tokens for :data:`WORDS` (Sana's default "complex human instruction" and a few
  prompt words): Sana prepends that ~1,060-character instruction to every prompt, and Gemma 2 has
  only eager attention, so one token per character would make the tiny text encoder the slowest
  part of a run; with words it is ~230 tokens, as with the real Gemma tokenizer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tokenizers import AddedToken
from transformers import CLIPTokenizer, GemmaTokenizerFast, Qwen2TokenizerFast, T5TokenizerFast

from tests.tiny_model import _bytes_to_unicode, write_tokenizer_files

_ASCII = [chr(c) for c in range(ord("!"), ord("~") + 1)]
_LATIN1 = [chr(c) for c in range(0xA1, 0x100) if c != 0xAD]  # ¡..ÿ without the soft hyphen
_SPACE = "▁"  # SentencePiece's word-boundary marker (U+2581)


def clip_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """CLIP's tokenizer (SD 1.x/2.x, SDXL, SD3): every byte alone and word-final, no merges."""
    with tempfile.TemporaryDirectory(prefix="tiny-clip-tokenizer-") as tmp:
        folder = write_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(folder, model_max_length=max_length)


def t5_tokenizer(max_length: int = 512) -> T5TokenizerFast:
    """T5's tokenizer (SD3, PixArt, FLUX): ``<pad>``=0, ``</s>``=1, ``<unk>``=2, then ``▁`` and characters.

    No ``<extra_id_*>`` sentinels (diffusion pipelines never use them), so the vocabulary is 3 + 1 + 94 + 94.
    """
    pieces = [_SPACE, *_ASCII, *_LATIN1]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *((piece, -1.0) for piece in pieces)]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=max_length)


QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen2/2.5-VL/3's special tokens, in their real relative order (ids 256… here, 151643… there)."""

QWEN_THINK = ("<think>", "</think>")
"""Qwen3's reasoning markers: added (atomic) tokens, not special ones, as in the real vocabulary."""

# Qwen3's chat template, trimmed to what the pipelines use: string (or [{"type": "text"}]) contents,
# the generation prompt, and an empty <think> block when ``enable_thinking=False`` (Flux.2 Klein);
# Z-Image passes ``enable_thinking=True`` and gets none, like the real template.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set content = message['content'] -%}"
    "{%- else -%}{%- set content = message['content'] | selectattr('type', 'equalto', 'text')"
    " | map(attribute='text') | join('') -%}{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}{%- endif -%}"
)


def qwen2_tokenizer(max_length: int = 512) -> Qwen2TokenizerFast:
    """Qwen's tokenizer (Qwen2.5-VL for Qwen-Image, Qwen3 for Z-Image / Flux.2 Klein): bytes, no merges.

    ``<|endoftext|>`` is pad and unk, ``<|im_end|>`` eos, as in the instruct models these pipelines use;
    ``<|im_start|>`` and the vision tokens are special too, ``<think>``/``</think>`` plain added tokens.
    ``padding_side`` is right.
    """
    vocab = {token: i for i, token in enumerate([*_bytes_to_unicode().values(), *QWEN_SPECIALS, *QWEN_THINK])}
    tokenizer = Qwen2TokenizerFast(
        vocab=vocab,
        merges=[],
        eos_token="<|im_end|>",
        model_max_length=max_length,
        additional_special_tokens=list(QWEN_SPECIALS[1:]),
        chat_template=QWEN3_CHAT_TEMPLATE,
    )
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in QWEN_THINK])
    return tokenizer


_WORDS_TEXT = (
    # Sana's default complex_human_instruction, in order of first appearance
    "Given a user prompt generate an Enhanced that provides detailed visual descriptions suitable for image "
    "generation Evaluate the level of detail in If is simple focus on adding specifics about colors shapes sizes "
    "textures and spatial relationships to create vivid concrete scenes already refine enhance existing details "
    "slightly without overcomplicating Here are examples how transform or prompts User Prompt A cat sleeping small "
    "fluffy white curled up round shape peacefully warm sunny windowsill surrounded by pots blooming red flowers "
    "busy city street bustling scene at dusk featuring glowing lamps diverse crowd people colorful clothing double "
    "decker bus passing towering glass skyscrapers Please only enhanced description below avoid including any "
    "additional commentary evaluations "
    # and a few words of test prompts
    "dog photo painting portrait landscape with blue green"
)
WORDS = tuple(_WORDS_TEXT.split())
"""Words that :func:`gemma_tokenizer` reads as one token each when a space precedes them."""


def _prefix_merges(words: tuple[str, ...], marker: str) -> list[tuple[str, str]]:
    """BPE merges that build ``marker + word`` one character at a time, left to right, for each word.

    Every piece then starts with ``marker``, so in a word the only pair with a merge is (piece so far,
    next character): BPE grows the longest prefix of a listed word, whatever the merges' order.
    """
    merges: dict[tuple[str, str], None] = {}
    for word in words:
        piece = marker
        for char in word:
            merges[piece, char] = None
            piece += char
    return list(merges)


def gemma_tokenizer(max_length: int = 300) -> GemmaTokenizerFast:
    """Gemma's tokenizer (Gemma 2 for Sana): ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, ``<mask>``=4.

    Then the 256 byte-fallback tokens ``<0x00>``…``<0xFF>``, ``▁`` and printable ASCII; ``<bos>`` is
    prepended, nothing appended (as in Gemma). Then ``▁word`` (and its prefixes) for each of :data:`WORDS`.
    Sana sets ``padding_side = "right"`` itself.
    """
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    merges = _prefix_merges(WORDS, _SPACE)
    pieces = [*specials, *(f"<0x{b:02X}>" for b in range(256)), _SPACE, *_ASCII, *(a + b for a, b in merges)]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    return GemmaTokenizerFast(
        vocab=vocab, merges=merges, model_max_length=max_length, add_bos_token=True, add_eos_token=False
    )

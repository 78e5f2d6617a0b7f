"""Where the text encoder cuts a prompt, so that members are told which of their words were ignored.

The limit is that of the encoder a family reads longest (:attr:`Family.prompt_reader`): CLIP's 77
tokens for SD 1.x and SDXL, but T5's 256-512 for SD 3 and FLUX.1, an LLM's 512 for Qwen-Image,
Z-Image and Flux.2 — where CLIP's cut is no loss, since T5 reads on. A loaded
:class:`bot.diffusion.pipeline.Pipeline` measures with its own tokenizer; the engine loads the
tokenizer alone (:meth:`PromptLimit.load`), a few MB and no weights, for every configured model.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from bot.diffusion.families import Family

log = logging.getLogger(__name__)


class PromptLimit:
    """Where a model's tokenizer cuts a prompt, measured on a private copy of it.

    ``limit`` tokens are read, ``reserved`` of them not the prompt's (the start and end tokens, a
    chat template's prefix): the first ``limit - reserved`` tokens of the prompt are kept.
    transformers reconfigures a fast tokenizer's truncation and padding on every call, and a
    concurrent call can fail with ``RuntimeError: Already borrowed`` (huggingface/tokenizers#537,
    huggingface/transformers#47085). Hence a private copy: the worker thread may be encoding
    prompts inside a pipeline call while the event loop asks about another one. Cheap, and safe to
    call from any thread.
    """

    def __init__(self, tokenizer: Any, *, limit: int | None = None, reserved: int | None = None) -> None:
        self._limit = int(limit if limit is not None else tokenizer.model_max_length)
        self._lock = threading.Lock()
        self._slow: Any = None
        self._fast: Any = None
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:  # a pure-Python tokenizer: share it, under the lock
            self._slow = tokenizer
        else:
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_str(backend.to_str())
            self._fast.no_truncation()
            self._fast.no_padding()
        if reserved is None:  # the specials the tokenizer adds around any text
            reserved = len(tokenizer("", truncation=False).input_ids)
        self._keep = max(1, self._limit - reserved)

    @classmethod
    def for_family(cls, tokenizer: Any, family: Family) -> PromptLimit:
        """The limit of ``family``'s reading encoder, whose tokenizer is ``tokenizer``."""
        reserved = family.prompt_reserved
        if reserved is None and family.chat_template:
            reserved = _template_prefix(tokenizer)
        return cls(tokenizer, limit=family.max_sequence_length, reserved=reserved)

    @classmethod
    def load(cls, model_id: str, family: Family) -> PromptLimit | None:
        """The model's reading tokenizer (a few MB, no weights), or None when it cannot be had. Blocking."""
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_id, subfolder=family.prompt_reader)
        except Exception as exc:  # offline, gated, no tokenizer folder: the notice is a nicety
            log.warning("no tokenizer for %s (%s): the long-prompt notice is off", model_id, exc)
            return None
        return cls.for_family(tokenizer, family)

    @property
    def max_prompt_tokens(self) -> int:
        """The tokens the encoder reads, specials included (77 for SD 1.x, 512 for FLUX.1-dev's T5)."""
        return self._limit

    def prompt_overflow(self, prompt: str) -> str | None:
        """The part of ``prompt`` the encoder will not read, or None when it reads all of it.

        Members should be told what was dropped.
        """
        with self._lock:
            if self._fast is not None:
                encoding = self._fast.encode(prompt, add_special_tokens=False)
                if len(encoding.ids) <= self._keep:
                    return None
                # offsets point into the original text: the member sees their own words, not
                # the lower-cased, whitespace-collapsed form the tokenizer works on
                removed = prompt[encoding.offsets[self._keep][0] :]
            else:
                ids = self._slow(prompt, add_special_tokens=False, truncation=False).input_ids
                if len(ids) <= self._keep:
                    return None
                removed = self._slow.decode(ids[self._keep :], skip_special_tokens=True)
        return removed.strip() or None


_MARK = "\u2063seedgrid\u2063"


def _template_prefix(tokenizer: Any) -> int:
    """The tokens a chat template puts before the member's prompt (Z-Image, Flux.2 read it that way)."""
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": _MARK}], tokenize=False, add_generation_prompt=True
        )
    except Exception as exc:  # no template: the pipeline would fail the same way
        log.warning("the tokenizer has no usable chat template (%s); counting no prefix", exc)
        return 0
    prefix = str(text).split(_MARK, 1)[0]
    return len(tokenizer(prefix, add_special_tokens=False).input_ids)

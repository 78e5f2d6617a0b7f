"""Where the text encoder cuts a prompt, so that members are told which of their words were ignored.

A loaded :class:`bot.diffusion.pipeline.Pipeline` measures with its own tokenizer; a bot whose
model runs elsewhere (the redis backend) loads the tokenizer alone (:meth:`PromptLimit.load`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from bot.config import ModelSettings

log = logging.getLogger(__name__)


class PromptLimit:
    """Where a model's tokenizer cuts a prompt, measured on a private copy of it.

    diffusers keeps the first ``limit - 1`` tokens (the start token included) and appends the
    end token. transformers reconfigures a fast tokenizer's truncation and padding on every
    call, and a concurrent call can fail with ``RuntimeError: Already borrowed``
    (huggingface/tokenizers#537, huggingface/transformers#47085). Hence a private copy: the
    worker thread may be encoding prompts inside a pipeline call while the event loop asks
    about another one. Cheap, and safe to call from any thread.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._limit = int(tokenizer.model_max_length)
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

    @classmethod
    def load(cls, settings: ModelSettings) -> PromptLimit | None:
        """The model's tokenizer (a few MB, no weights), or None when it cannot be had. Blocking."""
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(settings.id, subfolder="tokenizer")
        except Exception as exc:  # offline, gated, no tokenizer folder: the notice is a nicety
            log.warning("no tokenizer for %s (%s): the long-prompt notice is off", settings.id, exc)
            return None
        return cls(tokenizer)

    @property
    def max_prompt_tokens(self) -> int:
        """The text encoder's context, start and end tokens included (77 for SD 1.x)."""
        return self._limit

    def prompt_overflow(self, prompt: str) -> str | None:
        """The part of ``prompt`` the tokenizer will cut (beyond :attr:`max_prompt_tokens`), or None.

        Members should be told what was dropped.
        """
        with self._lock:
            if self._fast is not None:
                encoding = self._fast.encode(prompt)
                if len(encoding.ids) <= self._limit:
                    return None
                # offsets point into the original text: the member sees their own words, not
                # the lower-cased, whitespace-collapsed form the tokenizer works on
                removed = prompt[encoding.offsets[self._limit - 1][0] :]
            else:
                ids = self._slow(prompt, truncation=False).input_ids
                if len(ids) <= self._limit:
                    return None
                removed = self._slow.decode(ids[self._limit - 1 : -1], skip_special_tokens=True)
        return removed.strip() or None

"""The prompt blocklist: ``[safety] blocklist`` entries matched against normalized prompts.

An entry is either a word or phrase, matched as whole words, or ``re:<regular expression>``.
Both are compared with the prompt as :func:`normalize` writes it, so the usual disguises
fall away before anything is compared:

- letter case, full-width and other compatibility forms (``ＮＵＤＥ``, ``𝐧𝐮𝐝𝐞``, ``ⓝⓤⓓⓔ``: NFKC);
- invisible characters inside words: zero-width space/joiners, bidi marks and overrides
  (U+200E/F, U+202A-202E, U+2066-2069), soft hyphen, word joiner, BOM (every format
  character, category Cf), control characters and the invisible Hangul fillers;
- accents and every other combining mark (``é`` → ``e``, ``n̶u̶d̶e̶`` → ``nude``);
- look-alike letters from other scripts (``nudе`` with a Cyrillic ``е``): see :data:`CONFUSABLES`.

Word entries are then looked for in four views of the normalized text (regular
expressions see the normalized text only, exactly as :func:`normalize` returns it):

1. the words as written (punctuation and spaces separate words; ``_`` counts as punctuation);
2. the same with separators inside a word removed: punctuation within a space-separated chunk
   is deleted (``n.u.d.e``, ``nu-de``, ``n_u_d_e`` → ``nude``) and a run of single letters
   is joined (``n u d e`` → ``nude``; also without a leading ``a`` or ``i``, so that
   ``a n u d e`` is caught);
3. and 4. views 1 and 2 after the leet substitutions of :data:`LEET` (``nud3`` → ``nude``,
   ``a$$`` → ``ass``), applied only to space-separated chunks that hold a letter (or ``@``, ``$``)
   and are not a number with a common suffix, so that ``2024``, ``455``, ``45s``, ``4k`` or
   ``1080p`` stay numbers (and a rule ``ass`` written ``455`` or ``45s`` goes through).

Every view compares whole words: an entry matches a sequence of consecutive words, never a
part of one, so ``ass`` does not match ``class``, ``passage`` or ``c l a s s`` (the joined
run is ``class``). A symbol such as an emoji is a word of its own, so an entry ``🍆`` works.
Entries go through the same normalization and views, so an entry written with look-alikes,
accents or leet means the plain word.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence

logger = logging.getLogger(__name__)

REGEX_PREFIX = "re:"

CONFUSABLES: dict[str, str] = {
    # Latin letter → the characters that impersonate it. Chosen from Unicode's confusables.txt
    # (https://www.unicode.org/Public/security/latest/confusables.txt) plus the small-caps and
    # stroke letters, restricted to letters that really pass for the Latin one in running
    # lower- or upper-case text. Both cases are listed where the capital is the look-alike
    # (Greek Ν is N but its lower case ν is v, so Ν is mapped before case folding).
    # Scripts: Cyrillic, Greek, Armenian, Cherokee, Latin small capitals / IPA / stroke letters.
    # Full-width, mathematical, circled, super- and subscript letters need no entry: NFKC
    # maps them to ASCII first.
    "a": "аАαΑɑᴀᎪ",
    "b": "вВьЬβΒʙƀᏴᏏ",
    "c": "сСϲϹᴄᏟ",
    "d": "ԁԀᴅđᎠᏧ",
    "e": "еЕҽεΕᴇᎬ",
    "g": "ɡɢԌցᏀᏳ",
    "h": "нНһҺΗհʜħᎻᏂ",
    "i": "іІιΙıɩɪɨᎥ",
    "j": "јЈϳͿȷᴊᎫ",
    "k": "кКκΚᴋᏦ",
    "l": "ӏӀʟłᏞ",
    "m": "мМΜᴍᎷ",
    "n": "пПηΝոռɴ",
    "o": "оОοΟσօՕᴏø",
    "p": "рРρΡϱᴘᏢ",
    "q": "ԛԚզգ",
    "r": "гʀᎡᏒ",
    "s": "ѕЅՏꜱᏕᏚ",
    "t": "тТτΤᴛŧᎢ",
    "u": "υսՍᴜʉ",
    "v": "νѵѴᴠᏙ",
    "w": "ԝԜѡաᴡᎳᏔ",
    "x": "хХχΧ",
    "y": "уУүҮγΥʏᎩᎽ",
    "z": "ΖᴢᏃ",
    # ligatures NFKC keeps
    "ae": "æ",
    "oe": "œ",
}
"""The look-alike table. Also the 26 regional-indicator symbols (🇦 … 🇿, letters in a box) map
to a … z."""

LEET: dict[str, str] = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
"""Digits and signs written for letters; used only in the leet views of word matching."""

_REGIONAL_A = 0x1F1E6
_LOOKALIKES = {ord(char): latin for latin, chars in CONFUSABLES.items() for char in chars} | {
    _REGIONAL_A + i: chr(ord("a") + i) for i in range(26)
}
_LEET_TABLE = str.maketrans(LEET)
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
"""Hangul fillers: letters (category Lo) that draw nothing."""
_DROPPED_CATEGORIES = frozenset({"Mn", "Mc", "Me", "Cf", "Cs"})
"""Combining marks (after NFKD: accents, strike-through), format characters (zero-width, bidi,
soft hyphen, BOM) and lone surrogates. Control characters (Cc) other than whitespace go too."""

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]")
"""A word (letters and digits) or one other visible character (punctuation, filtered out
afterwards, or a symbol such as an emoji, which counts as a word of its own)."""
_NOT_WORD = re.compile(r"[^\w\s]|_")
_LEET_CHUNK = re.compile("\\S*[" + re.escape("".join(LEET)) + "]\\S*")
_HAS_LETTER = re.compile(r"[^\W\d_]|[@$]")
_NUMBER = re.compile(r"[^\w@$]*\d+(?:[.,]\d+)*(?:s|k|p|d|x|m|th|st|nd|rd|mm|cm|px|fps)?[^\w@$]*")
"""A chunk the leet views leave alone: ``45s``, ``(4k)``, ``1080p,``, ``3d``, ``2nd``."""
_LEAD_WORDS = frozenset({"a", "i"})
"""One-letter words that may stand before a spelled-out word: ``a n u d e``."""


def _keep(char: str) -> bool:
    category = unicodedata.category(char)
    if category in _DROPPED_CATEGORIES or char in _INVISIBLE_LETTERS:
        return False
    return category != "Cc" or char.isspace()


def normalize(text: str) -> str:
    """``text`` as the blocklist sees it: NFKC, look-alikes folded to Latin, case-folded,
    invisible characters and combining marks removed, whitespace collapsed to single spaces.

    Idempotent, and total: any ``str`` (lone surrogates included) gives a ``str``.
    """
    if text.isascii():  # the common case: NFKC, look-alikes and marks cannot apply
        text = text.lower()
        if not text.isprintable():
            text = "".join(char for char in text if char.isprintable() or char.isspace())
        return " ".join(text.split())
    # look-alikes before NFKC too: it would turn some into other letters (ϲ, a c, into σ, an o)
    text = unicodedata.normalize("NFKC", text.translate(_LOOKALIKES)).translate(_LOOKALIKES).casefold()
    text = "".join(char for char in unicodedata.normalize("NFKD", text) if _keep(char))
    # look-alikes again: decomposition (ё → е) and case folding (Cherokee) may have made new ones
    text = unicodedata.normalize("NFC", text.translate(_LOOKALIKES))
    return " ".join(text.split())


def _drop_punctuation(match: re.Match[str]) -> str:
    char = match[0]
    return "" if unicodedata.category(char).startswith("P") else char


def _words(text: str) -> list[str]:
    """Words and symbols of normalized ``text``; punctuation separates, like whitespace."""
    return [
        token
        for token in _TOKEN.findall(text)
        if len(token) > 1 or token.isalnum() or not unicodedata.category(token).startswith("P")
    ]


def _leet_chunk(match: re.Match[str]) -> str:
    chunk = match[0]
    if _HAS_LETTER.search(chunk) and not _NUMBER.fullmatch(chunk):
        return chunk.translate(_LEET_TABLE)
    return chunk


def _leet(text: str) -> str:
    return _LEET_CHUNK.sub(_leet_chunk, text)


def _joined(text: str) -> tuple[list[str], list[str] | None]:
    """The words of ``text`` with separators inside words removed (view 2 of the module docs).

    Also the variant where a run of single letters keeps a leading ``a`` or ``i`` apart, or
    None when no run starts with one.
    """
    # punctuation never spans whitespace: deleting all of it joins the pieces of each chunk
    words = _words(_NOT_WORD.sub(_drop_punctuation, text))
    joined: list[str] = []
    lead: list[str] = []
    leads = False
    run: list[str] = []
    for word in [*words, ""]:  # "" flushes the last run
        if len(word) == 1 and word.isalnum():
            run.append(word)
            continue
        if run:
            joined.append("".join(run))
            if len(run) > 2 and run[0] in _LEAD_WORDS:
                leads = True
                lead += (run[0], "".join(run[1:]))
            else:
                lead.append(joined[-1])
            run = []
        if word:
            joined.append(word)
            lead.append(word)
    return joined, lead if leads else None


def _views(normalized: str, *, drop_lead: bool = True) -> Iterator[list[str]]:
    """Word sequences to compare with the entries (the four views of the module docs).

    ``drop_lead=False`` for the entries themselves: ``a n u s`` must not become ``a nus``.
    """
    seen: set[tuple[str, ...]] = set()
    texts = [normalized]
    leet = _leet(normalized)
    if leet != normalized:
        texts.append(leet)
    for text in texts:
        joined, lead = _joined(text)
        views = [_words(text), joined]
        if drop_lead and lead is not None:
            views.append(lead)
        for words in views:
            key = tuple(words)
            if key not in seen:
                seen.add(key)
                yield words


class Blocklist:
    """``[safety] blocklist``, compiled once: words and phrases, and ``re:`` regular expressions.

    Matching a 1000-character prompt against 100 entries (90 words, 10 regexes) takes about
    0.35 ms (ASCII) to 0.55 ms (look-alikes and zero-width spaces) on this project's 2-core CI
    machine (``tests/bot/test_policy.py`` prints it): cheap enough for the event loop.
    """

    def __init__(self, entries: Sequence[str]) -> None:
        self._phrases: dict[tuple[str, ...], str] = {}
        self._regexes: list[tuple[re.Pattern[str], str]] = []
        for entry in entries:
            if entry.startswith(REGEX_PREFIX):
                self._regexes.append((re.compile(entry[len(REGEX_PREFIX) :], re.IGNORECASE), entry))
                continue
            keys = {tuple(words) for words in _views(normalize(entry), drop_lead=False) if words}
            if not keys:
                logger.warning("blocklist entry %r has no letters, digits or symbols; it can never match", entry)
            for key in keys:
                self._phrases.setdefault(key, entry)  # the first entry wins a tie
        self._firsts = frozenset(key[0] for key in self._phrases)
        self._lengths = sorted({len(key) for key in self._phrases})
        self._size = len(entries)

    def __len__(self) -> int:
        return self._size

    def match(self, text: str) -> str | None:
        """The entry, as configured, that ``text`` matches, or None."""
        if not self._size:
            return None
        normalized = normalize(text)
        if self._phrases:
            for words in _views(normalized):
                hit = self._find(words)
                if hit is not None:
                    return hit
        for pattern, entry in self._regexes:
            if pattern.search(normalized):
                return entry
        return None

    def check(self, *texts: str) -> str | None:
        """The first entry any of ``texts`` matches (prompt, negative prompt, suffixes…), or None.

        Each text is matched on its own: the end of one and the start of the next make no phrase.
        """
        for text in texts:
            hit = self.match(text)
            if hit is not None:
                return hit
        return None

    def _find(self, words: list[str]) -> str | None:
        count = len(words)
        for start, word in enumerate(words):
            if word not in self._firsts:
                continue
            for length in self._lengths:
                if start + length > count:
                    break
                hit = self._phrases.get(tuple(words[start : start + length]))
                if hit is not None:
                    return hit
        return None

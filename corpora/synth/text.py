"""Public-domain English sentences for the speech set: the King James Bible from Debian's bible-kjv.

Verses are split into clauses, normalized to LibriSpeech's transcript alphabet (A-Z, apostrophe, space),
and assigned to train/dev/test by a hash of the text, so the split does not depend on the seed and
no sentence can be in two subsets.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import subprocess

from acom.errors import ToolError

MIN_WORDS, MAX_WORDS = 5, 16
_CLAUSE_SPLIT = re.compile(r"[.;:?!()]")
_NOT_ALLOWED = re.compile(r"[^A-Z' ]")


def normalize(text: str) -> str:
    """LibriSpeech-style transcript: upper case, letters and apostrophes, single spaces."""
    text = text.upper().replace("-", " ")
    text = _NOT_ALLOWED.sub(" ", text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def sentence_split(text: str) -> str:
    """The subset a sentence belongs to, by a stable hash: 'test' (1 in 10), 'dev' (1 in 10) or 'train'."""
    bucket = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


@functools.lru_cache(maxsize=1)
def kjv_verses() -> tuple[str, ...]:
    """Every verse of the KJV text, one string each, read with the `bible` program."""
    exe = shutil.which("bible")
    if exe is None:
        raise ToolError("the `bible` program is missing: install the Debian package bible-kjv")
    out = subprocess.run([exe, "-l100000", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    verses = []
    for line in out.splitlines():
        m = re.match(r"^\s*\d+\s+(.*)$", line)  # verse lines start with their number; headings do not
        if m:
            verses.append(m.group(1))
    if len(verses) < 30000:
        raise ToolError(f"bible-kjv gave only {len(verses)} verses; the package looks damaged")
    return tuple(verses)


@functools.lru_cache(maxsize=1)
def sentences() -> dict[str, tuple[str, ...]]:
    """Normalized clauses of MIN_WORDS..MAX_WORDS words, deduplicated, by subset ('train', 'dev', 'test')."""
    seen: set[str] = set()
    by_split: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for verse in kjv_verses():
        if re.search(r"\d", verse):
            continue  # digits would need a number reader that matches each TTS engine's
        for clause in _CLAUSE_SPLIT.split(verse):
            for piece in _pieces(clause):
                if piece not in seen:
                    seen.add(piece)
                    by_split[sentence_split(piece)].append(piece)
    return {k: tuple(v) for k, v in by_split.items()}


def _pieces(clause: str) -> list[str]:
    """Normalized pieces of MIN_WORDS..MAX_WORDS words: comma phrases merged greedily, long ones cut evenly."""
    pieces, current = [], []
    for phrase in clause.split(","):
        words = normalize(phrase).split()
        if current and len(current) + len(words) > MAX_WORDS:
            pieces.append(current)
            current = []
        current = current + words
    pieces.append(current)
    out = []
    for words in pieces:
        n = -(-len(words) // MAX_WORDS)  # how many even parts keep each under MAX_WORDS
        size = -(-len(words) // n) if n else 0
        out += [" ".join(words[i:i + size]) for i in range(0, len(words), size or 1)
                if len(words[i:i + size]) >= MIN_WORDS]
    return out

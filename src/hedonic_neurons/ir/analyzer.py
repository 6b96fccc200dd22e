"""The text analyzer behind every IR target and feature (docs/method.md §8, paper App. D).

The IR tasks (CQTR, Mean-TF/L) and the LETOR/MSLR body-stream features are defined on
*terms*, so the analyzer that turns text into terms is part of their definition. The
default analyzer is the one documented here and nothing else:

1. **Lower-casing** (``str.lower``; Unicode-aware).
2. **Tokenisation** by the regular expression :data:`TOKEN_PATTERN` = ``[^\\W_]+``: maximal
   runs of Unicode letters and digits. Punctuation, whitespace *and the underscore* separate
   tokens, so ``"file_name(x)"`` gives ``["file", "name", "x"]`` and ``"U.S."`` gives
   ``["u", "s"]``.
3. **Stop-word removal** with :data:`LUCENE_STOPWORDS`, the 33-word English stop set of
   Apache Lucene (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``, formerly
   ``StopAnalyzer.ENGLISH_STOP_WORDS_SET``), which is also the default of Anserini/Pyserini
   BM25 indexes of MS MARCO. Removal happens after lower-casing.
4. **Stemming: off by default.** Pass any ``str -> str`` callable as ``stemmer`` (for example
   ``nltk.stem.PorterStemmer().stem``, which reproduces Anserini's Porter setting); it is
   applied after stop-word removal. The package ships no stemmer of its own.

Tokens shorter than ``min_length`` characters are dropped (default 1: keep everything).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

__all__ = ["DEFAULT_ANALYZER", "LUCENE_STOPWORDS", "TOKEN_PATTERN", "Analyzer", "analyze"]

#: Tokens are maximal runs of Unicode letters and digits (underscore is a separator).
TOKEN_PATTERN: str = r"[^\W_]+"

#: Apache Lucene's classic English stop set (33 words; ``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``).
LUCENE_STOPWORDS: frozenset[str] = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
        "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
        "there", "these", "they", "this", "to", "was", "will", "with",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Analyzer:
    """Lower-case, tokenise, remove stop words, optionally stem.

    Parameters
    ----------
    lowercase : bool
        Lower-case the text before tokenising (default ``True``).
    pattern : str
        Regular expression whose matches are the tokens (default :data:`TOKEN_PATTERN`).
    stopwords : frozenset of str
        Terms removed after lower-casing (default :data:`LUCENE_STOPWORDS`; pass
        ``frozenset()`` to keep every token).
    stemmer : callable or None
        Optional ``str -> str`` applied to each remaining token (default ``None``: no
        stemming). It must be deterministic.
    min_length : int
        Tokens with fewer characters are dropped (default 1).

    Examples
    --------
    >>> Analyzer().analyze("The cat's file_name, in 2 BOXES!")
    ['cat', 's', 'file', 'name', '2', 'boxes']
    """

    lowercase: bool = True
    pattern: str = TOKEN_PATTERN
    stopwords: frozenset[str] = LUCENE_STOPWORDS
    stemmer: Callable[[str], str] | None = None
    min_length: int = 1
    _regex: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.min_length, int) or self.min_length < 1:
            raise InputError(f"min_length: expected an int >= 1, got {self.min_length!r}.")
        if self.stemmer is not None and not callable(self.stemmer):
            raise InputError(f"stemmer: expected a callable str -> str or None, got {type(self.stemmer).__name__}.")
        try:
            regex = re.compile(self.pattern)
        except re.error as exc:
            raise InputError(f"pattern: {self.pattern!r} is not a valid regular expression ({exc}).") from exc
        object.__setattr__(self, "stopwords", frozenset(self.stopwords))
        object.__setattr__(self, "_regex", regex)

    def analyze(self, text: str) -> list[str]:
        """Return the terms of ``text`` in order of occurrence (duplicates kept).

        Parameters
        ----------
        text : str
            Any text; ``None`` and non-strings are rejected.

        Returns
        -------
        list of str
        """
        if not isinstance(text, str):
            raise InputError(f"text: expected a str, got {type(text).__name__}.")
        if self.lowercase:
            text = text.lower()
        stop = self.stopwords
        terms = [t for t in self._regex.findall(text) if len(t) >= self.min_length and t not in stop]
        if self.stemmer is not None:
            stem = self.stemmer
            terms = [stem(t) for t in terms]
        return terms

    def analyze_many(self, texts: Iterable[str]) -> list[list[str]]:
        """:meth:`analyze` applied to each text."""
        return [self.analyze(t) for t in texts]

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (for manifests and provenance)."""
        return {
            "lowercase": self.lowercase,
            "pattern": self.pattern,
            "stopwords": sorted(self.stopwords),
            "stemmer": None if self.stemmer is None else getattr(self.stemmer, "__qualname__", repr(self.stemmer)),
            "min_length": self.min_length,
        }


#: The analyzer used whenever ``analyzer=None`` is passed.
DEFAULT_ANALYZER: Analyzer = Analyzer()


def analyze(text: str, analyzer: Analyzer | None = None) -> list[str]:
    """Terms of ``text`` under ``analyzer`` (default :data:`DEFAULT_ANALYZER`)."""
    return (analyzer or DEFAULT_ANALYZER).analyze(text)

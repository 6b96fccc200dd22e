"""Text extraction for the offline docstring corpus.

Which standard-library modules are read, which public objects count, and how a docstring
becomes a (query, passage) pair.

Private helpers of :mod:`hedonic_neurons.ir.corpus`, which re-exports :data:`STDLIB_MODULES` and
:data:`OOD_PACKAGES`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .analyzer import DEFAULT_ANALYZER

#: The standard-library modules whose docstrings make the corpus (fixed, sorted).
STDLIB_MODULES: tuple[str, ...] = tuple(sorted("""
argparse array ast base64 bdb binascii bisect calendar cmd code codecs codeop collections
collections.abc colorsys configparser contextlib copy copyreg csv dataclasses datetime difflib dis
doctest email email.charset email.contentmanager email.feedparser email.generator email.header
email.headerregistry email.message email.parser email.policy email.utils enum filecmp fileinput
fnmatch fractions functools getopt gettext glob graphlib gzip heapq hmac html html.parser
http http.cookiejar http.cookies http.server inspect io ipaddress itertools json json.decoder
json.encoder keyword linecache logging logging.config logging.handlers mailbox math mimetypes
modulefinder netrc numbers operator optparse pathlib pickle pkgutil plistlib pprint profile
pstats py_compile pyclbr queue quopri random re reprlib runpy sched secrets shelve shlex
statistics string stringprep struct symtable tabnanny tarfile textwrap threading timeit token
tokenize trace traceback types unittest.case unittest.loader unittest.result unittest.runner
unittest.suite urllib.error urllib.parse urllib.robotparser uuid warnings wave weakref
wsgiref.handlers wsgiref.headers wsgiref.simple_server wsgiref.util xml.dom.minidom
xml.dom.pulldom xml.etree.ElementTree xml.sax.handler xml.sax.saxutils xml.sax.xmlreader
zipfile zipimport zoneinfo
""".split()))
#: Top-level packages that form the out-of-distribution split.
OOD_PACKAGES: tuple[str, ...] = ("email", "html", "http", "urllib", "wsgiref", "xml")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*-+>\s*.*)?$")  # "f(x) -> y" / "f(x) --> y" lines
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class _Entry:
    module: str
    qualname: str
    query: str
    passage: str


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _split_docstring(doc: str) -> tuple[str, str] | None:
    paragraphs = [p for p in _PARAGRAPH.split(inspect.cleandoc(doc)) if p.strip()]
    while paragraphs and all(_SIGNATURE.match(line.strip()) for line in paragraphs[0].splitlines()):
        paragraphs = paragraphs[1:]
    if not paragraphs:
        return None
    first_lines = paragraphs[0].splitlines()
    if len(paragraphs) > 1 and len(first_lines) <= 3:
        return _collapse(paragraphs[0]), _collapse("\n".join(paragraphs[1:]))
    rest = "\n".join(first_lines[1:] + paragraphs[1:])
    return _collapse(first_lines[0]), _collapse(rest)


def _own_doc(obj: Any) -> str | None:
    doc = getattr(obj, "__doc__", None)
    return doc if isinstance(doc, str) and doc.strip() else None


_STDLIB_DIR = os.path.dirname(os.path.abspath(inspect.__file__))


def _defined_here(obj: Any, qualname: str) -> bool:
    """True if ``obj`` was defined under ``qualname`` in the standard library.

    Aliases (``__qualname__`` differs) and objects other packages attach to standard-library
    modules or classes (their code lives outside the standard library; e.g. a library adding
    ``logging.Logger.info_once`` with ``functools.wraps``) are skipped, so the corpus does not
    depend on what else the process has imported.
    """
    if getattr(obj, "__qualname__", None) != qualname:
        return False
    code = getattr(inspect.unwrap(obj), "__code__", None) if callable(obj) else None
    if code is None or code.co_filename.startswith("<frozen "):  # C or frozen standard-library code
        return True
    return os.path.abspath(code.co_filename).startswith(_STDLIB_DIR)


def _members(modname: str) -> list[tuple[str, Any]]:
    """(qualified name, object) of the public objects defined in ``modname``, sorted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mod = importlib.import_module(modname)
        except ImportError as exc:  # pragma: no cover - every listed module is always built
            raise ConfigError(f"offline corpus: standard-library module {modname!r} failed to import ({exc}).") from exc
        owners = {modname, "_" + modname.rsplit(".", 1)[-1]}
        out: list[tuple[str, Any]] = []
        for name in sorted(vars(mod)):
            if name.startswith("_"):
                continue
            obj = vars(mod)[name]
            if not (inspect.isclass(obj) or callable(obj)) or getattr(obj, "__module__", None) not in owners:
                continue
            if not _defined_here(obj, name):
                continue
            out.append((name, obj))
            if inspect.isclass(obj):
                for attr in sorted(vars(obj)):
                    if attr.startswith("_"):
                        continue
                    member = vars(obj)[attr]
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    elif isinstance(member, property):
                        member = member.fget
                    if (member is not None and callable(member) and not inspect.isclass(member)
                            and _defined_here(member, f"{name}.{attr}")):
                        out.append((f"{name}.{attr}", member))
    return out


def _harvest(max_passage_words: int, min_query_terms: int, min_passage_terms: int) -> list[_Entry]:
    an = DEFAULT_ANALYZER
    seen_obj: set[int] = set()
    seen_q: set[str] = set()
    seen_p: set[str] = set()
    entries: list[_Entry] = []
    keep_alive: list[Any] = []  # ids are only unique while the objects live
    for modname in STDLIB_MODULES:
        for qualname, obj in _members(modname):
            doc = _own_doc(obj)
            if doc is None or id(obj) in seen_obj:
                continue
            seen_obj.add(id(obj))
            keep_alive.append(obj)
            split = _split_docstring(doc)
            if split is None:
                continue
            query, passage = split
            passage = " ".join(passage.split()[:max_passage_words])
            if len(an.analyze(query)) < min_query_terms or len(an.analyze(passage)) < min_passage_terms:
                continue
            if query in seen_q or passage in seen_p:
                continue
            seen_q.add(query)
            seen_p.add(passage)
            entries.append(_Entry(modname, qualname, query, passage))
    return entries


def _split_of(module: str) -> str:
    return "ood" if module.split(".", 1)[0] in OOD_PACKAGES else "train"

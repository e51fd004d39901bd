"""Load a symphony file, reusing its compiled AST from a disk cache when the file is unchanged.

The largest bundled file takes a noticeable fraction of a second to read and check; every
strategy process (and every `alchemiser evaluate`) loads all files at start, so the compiled tree
is pickled under `ALCHEMISER_CACHE_DIR`. The key covers everything the tree depends on: the
file's bytes (SHA-256), its name (errors and warnings carry it), and a fingerprint of the
parser's own source, so changing the reader, the compiler, the indicator table or the AST
invalidates old entries by itself. The cache directory is our own and trusted (it holds
pickles); an unreadable or corrupt entry is ignored and rebuilt, and a cache that cannot be
written never fails a load.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import structlog

from services.strategy.dsl import ast, compiler, indicators, reader
from services.strategy.dsl.ast import Symphony
from services.strategy.dsl.compiler import parse_symphony
from services.strategy.dsl.errors import DslSyntaxError

log = structlog.get_logger(__name__)

CACHE_FORMAT_VERSION = 1


def _parser_fingerprint() -> str:
    """Changes whenever the reader, the compiler, the indicator table or the AST changes (bump
    the format version by hand only for an installation without source files)."""
    digest = hashlib.sha256(f"format {CACHE_FORMAT_VERSION}".encode())
    for module in (ast, reader, compiler, indicators):
        path = module.__file__
        digest.update(Path(path).read_bytes() if path else module.__name__.encode())
    return digest.hexdigest()


_PARSER_FINGERPRINT = _parser_fingerprint()


def cache_key(content: bytes, file_name: str) -> str:
    """The entry name for one file's bytes under this parser version."""
    digest = hashlib.sha256(_PARSER_FINGERPRINT.encode())
    digest.update(file_name.encode("utf-8", "surrogatepass"))
    digest.update(b"\0")
    digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def decode_source(content: bytes, file_name: str) -> str:
    """UTF-8 text of a strategy file (a leading byte-order mark is dropped)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = content.rfind(b"\n", 0, error.start) + 1
        line = content.count(b"\n", 0, error.start) + 1
        column = len(content[line_start : error.start].decode("utf-8", "replace")) + 1
        raise DslSyntaxError(
            file_name,
            line,
            column,
            f"invalid UTF-8 byte 0x{content[error.start]:02X}; save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _read_entry(entry: Path, file_name: str) -> Symphony | None:
    try:
        with entry.open("rb") as stream:
            cached = pickle.load(stream)
    except FileNotFoundError:
        return None
    except Exception as error:  # a corrupt entry of any shape is only a cache miss
        log.warning("parse_cache_entry_unreadable", entry=str(entry), error=repr(error))
        return None
    if not isinstance(cached, Symphony) or cached.file_name != file_name:
        log.warning("parse_cache_entry_invalid", entry=str(entry))
        return None
    return cached


def _write_entry(entry: Path, symphony: Symphony) -> None:
    """Write atomically (temp file + rename) so a concurrent reader never sees half an entry."""
    temporary: str | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(symphony, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, entry)
        temporary = None
    except (OSError, pickle.PicklingError, RecursionError) as error:
        log.warning("parse_cache_write_failed", entry=str(entry), error=repr(error))
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def load_symphony(path: Path, cache_dir: Path | None) -> Symphony:
    """Parse and statically check the file at `path`, through the cache when `cache_dir` is set.

    Raises `DslSyntaxError` / `DslStaticError` for a bad file (never cached) and `OSError` if
    the file cannot be read.
    """
    content = path.read_bytes()
    file_name = path.name
    entry = cache_dir / f"{cache_key(content, file_name)}.pickle" if cache_dir else None
    if entry is not None:
        cached = _read_entry(entry, file_name)
        if cached is not None:
            return cached
    symphony = parse_symphony(decode_source(content, file_name), file_name)
    if entry is not None:
        _write_entry(entry, symphony)
    return symphony

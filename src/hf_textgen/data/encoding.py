"""Advice for a data file that is not UTF-8: its likely encoding, and the `iconv` command that converts it.

The guess comes from `charset-normalizer` (installed with `requests`, which `huggingface_hub` and `datasets` need),
which scores every codec Python knows by how plausible the decoded text is. Two adjustments make its answer safe
to act on:

- Single-byte guesses are unreliable between the Western code pages (on a French latin-1 paragraph the top guess
  can be the Baltic cp1257, which turns "ç" into "į"; on "Café" alone, the Urdu cp1006). Windows-1252 is by far
  the most common of them and decodes every latin-1 letter the same way, so it is preferred whenever it is among
  the candidates or decodes the bytes with no more "chaos" (charset-normalizer's measure of implausible
  characters) than the top guess. Cyrillic or Greek code pages read as windows-1252 are chaotic, so they keep their
  own name.
- Python's codec names are turned into the names `iconv -l` lists (`gb18030` -> `GB18030`, `cp932` -> `CP932`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from charset_normalizer import from_bytes
from charset_normalizer.utils import is_multi_byte_encoding

# Python codec names whose iconv name is not the mechanical spelling (upper case, "_" -> "-").
_ICONV_NAMES = {
    "latin_1": "LATIN1",
    "mac_roman": "MACINTOSH",
    "utf_16_be": "UTF-16BE",
    "utf_16_le": "UTF-16LE",
    "utf_32_be": "UTF-32BE",
    "utf_32_le": "UTF-32LE",
}
_COMMON_SINGLE_BYTE = "cp1252"


def guess_encoding(data: bytes) -> str | None:
    """Guess the encoding of bytes that are not UTF-8.

    Args:
        data: The start of the file (a few kB is plenty; a multi-byte character cut at the end is tolerated).

    Returns:
        The encoding as `iconv` names it (e.g. `GB18030`, `CP932`, `CP1252`), or None when nothing decodes the
        bytes plausibly.
    """
    # A probe cut from a longer file may end inside a multi-byte character: try again without its last bytes.
    for cut in range(4):
        matches = from_bytes(data[: len(data) - cut])
        best = matches.best()
        if best is not None:
            break
    else:
        return None
    encoding = best.encoding
    if not is_multi_byte_encoding(encoding) and encoding != _COMMON_SINGLE_BYTE:
        western = from_bytes(data, cp_isolation=[_COMMON_SINGLE_BYTE]).best()
        candidates = {match.encoding for match in matches}
        if western is not None and (_COMMON_SINGLE_BYTE in candidates or western.chaos <= best.chaos):
            encoding = _COMMON_SINGLE_BYTE
    return iconv_name(encoding)


def iconv_name(python_codec: str) -> str:
    """The `iconv` spelling of a Python codec name (`gb18030` -> `GB18030`, `iso8859_15` -> `ISO-8859-15`)."""
    name = _ICONV_NAMES.get(python_codec)
    if name is not None:
        return name
    name = python_codec.upper().replace("_", "-")
    if name.startswith("ISO8859-"):
        name = "ISO-8859-" + name.removeprefix("ISO8859-")
    return name


def conversion_advice(data: bytes, path: str | None = None) -> str:
    """The part of a not-UTF-8 error that says what to do: the likely encoding and a command to paste.

    Args:
        data: Bytes from the file (its start, or the chunk that failed to decode).
        path: The file, when known; the command then names it and a `.utf8` sibling to write.

    Returns:
        E.g. ``it looks like GB18030: convert it with `iconv -f GB18030 -t UTF-8 zh.txt > zh.utf8.txt` ``.
    """
    encoding = guess_encoding(data)
    source = shlex.quote(path) if path else "FILE"
    if path:
        original = Path(path)
        target = shlex.quote(str(original.with_name(f"{original.stem}.utf8{original.suffix}")))
    else:
        target = "FILE.utf8.txt"
    if encoding is None:
        return f"find its encoding (`file -i {source}`), then `iconv -f ENCODING -t UTF-8 {source} > {target}`"
    return f"it looks like {encoding}: convert it with `iconv -f {encoding} -t UTF-8 {source} > {target}`"

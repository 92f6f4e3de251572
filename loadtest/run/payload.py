"""The self-checking payload format shared by the reference server and the verifier.

A blob of ``n`` bytes with seed ``s`` is the first ``n`` bytes of an endless run of 64-byte
ASCII records. Record ``i`` is::

    <seed as 8 hex digits> ":" <i as 10 hex digits> ":" <43 letters> "\\n"

and its 43 letters are ``ALPHABET`` rotated by ``(seed + i) % 62``. Because every record names
its seed and its own index, a reader can tell where a blob was cut (length, or a record that
ends early), altered (a record that differs from the one regenerated for that place) or
delivered to the wrong caller (a valid blob, but with another request's seed).

The reference server (``targets/reference_server.py``) carries its own copy of
:func:`blob_text`, because it must import nothing but ``mcp`` and the standard library; a test
keeps the two byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RECORD_SIZE = 64
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_FILL = 43
_DOUBLE = ALPHABET + ALPHABET
_FILLS = tuple(_DOUBLE[k : k + _FILL] for k in range(len(ALPHABET)))
#: Records regenerated per verification step: 64 KiB of expected text at a time.
_CHUNK_RECORDS = 1024
SEED_MASK = 0xFFFFFFFF


def _records(seed: int, first: int, count: int) -> str:
    s = seed & SEED_MASK
    return "".join(f"{s:08x}:{i:010x}:{_FILLS[(s + i) % 62]}\n" for i in range(first, first + count))


def blob_text(n_bytes: int, seed: int = 0) -> str:
    """Return exactly ``n_bytes`` of the deterministic pattern for ``seed``."""
    if n_bytes < 0:
        raise ValueError("n_bytes must be >= 0")
    full, rest = divmod(n_bytes, RECORD_SIZE)
    text = _records(seed, 0, full + (1 if rest else 0))
    return text[:n_bytes]


Verdict = Literal["ok", "truncated", "corrupt", "misrouted"]


@dataclass(frozen=True, slots=True)
class BlobCheck:
    """The outcome of checking a received blob against the one that was asked for."""

    verdict: Verdict
    #: Byte offset of the first difference, or the received length when it was cut short.
    offset: int | None = None
    detail: str = ""


def check_blob(received: str, n_bytes: int, seed: int) -> BlobCheck:
    """Check ``received`` against ``blob_text(n_bytes, seed)`` without building that text whole.

    The expected text is regenerated 64 KiB at a time and compared slice by slice, so checking a
    blob of tens of MB costs one extra 64 KiB string, not a second copy of the blob.
    """
    got = len(received)
    header_seed = _header_seed(received)
    if header_seed is not None and header_seed != seed & SEED_MASK:
        return BlobCheck(
            "misrouted", 0, f"blob carries seed {header_seed:#x}, asked for {seed & SEED_MASK:#x}"
        )
    limit = min(got, n_bytes)
    step = _CHUNK_RECORDS * RECORD_SIZE
    first_record = 0
    for start in range(0, limit, step):
        expected = _records(seed, first_record, _CHUNK_RECORDS)
        first_record += _CHUNK_RECORDS
        end = min(start + step, limit)
        part = received[start:end]
        if part != expected[: end - start]:
            at = start + next(k for k, (a, b) in enumerate(zip(part, expected, strict=False)) if a != b)
            kind: Verdict = "corrupt"
            return BlobCheck(kind, at, f"content differs at byte {at} of {n_bytes}")
    if got < n_bytes:
        return BlobCheck("truncated", got, f"{got} of {n_bytes} bytes arrived")
    if got > n_bytes:
        return BlobCheck("corrupt", n_bytes, f"{got} bytes arrived, {n_bytes} expected")
    return BlobCheck("ok")


def _header_seed(received: str) -> int | None:
    if len(received) < 9 or received[8] != ":":
        return None
    try:
        return int(received[:8], 16)
    except ValueError:
        return None

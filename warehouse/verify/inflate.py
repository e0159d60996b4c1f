"""The warehouse's inflating of compressed batches, bounded: a body that would inflate past the
limit (a decompression bomb) is refused after inflating at most ``limit + 1`` bytes."""

from __future__ import annotations

import zlib

MAX_INFLATED = 64 * 1024 * 1024  # as large as an uncompressed body may be
_WBITS = {"gzip": 31, "deflate": 15}  # HTTP "deflate" is the zlib format (RFC 9110 8.4.1.2)
ENCODINGS = ("identity", *_WBITS)


class InflateError(ValueError):
    """The body cannot be inflated; ``too_large`` tells a bomb from a corrupt stream."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def inflate(body: bytes, encoding: str, limit: int = MAX_INFLATED) -> bytes:
    """The body with its content coding undone (``identity`` as is). One complete gzip member or
    zlib stream, nothing after it, at most ``limit`` bytes inflated."""
    if encoding == "identity":
        return body
    if encoding not in _WBITS:
        raise InflateError(f"content coding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    stream = zlib.decompressobj(_WBITS[encoding])
    try:
        out = stream.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InflateError(f"body is not valid {encoding}: {exc}") from None
    if len(out) > limit:
        raise InflateError(f"body inflates past {limit} bytes", too_large=True)
    if not stream.eof:
        raise InflateError(f"{encoding} body ends before its stream does (truncated)")
    if stream.unused_data:
        raise InflateError(
            f"{len(stream.unused_data)} bytes after the end of the {encoding} stream"
        )
    return out

"""Reading an uploaded image from a request body: raw bytes or a multipart form, bounded in size.

Whatever the client sends (no boundary, a wrong boundary, a truncated form, a part larger than the limit),
the answer is a clear 4xx: 413 past the limit, 415 for a body that holds no image part.
"""

from __future__ import annotations

from aiohttp import web

from avatar_rt.errors import AvatarRtError, ImageError


def too_large(limit: int) -> AvatarRtError:
    return AvatarRtError(f"the upload is larger than {limit // 2**20} MiB", code="body_too_large", status=413)


async def _read_bounded(read_chunk, limit: int) -> bytes:
    data = bytearray()
    while True:
        chunk = await read_chunk()
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise too_large(limit)


async def read_image_upload(request: web.Request, limit: int) -> bytes:
    """The image bytes of a POST /v1/avatars body (raw, or the "image" field of a multipart form)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)  # refused before a byte of the body is read
    if not request.content_type.startswith("multipart/"):
        return await _read_bounded(lambda: request.content.read(2**16), limit)
    try:
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "name", None) == "image" and hasattr(part, "read_chunk"):
                data = await _read_bounded(part.read_chunk, limit)
                # base64 or quoted-printable parts (rare, but legal) come back decoded.
                return bytes(part.decode(data)) if "Content-Transfer-Encoding" in part.headers else data
    except (ValueError, AssertionError, KeyError, LookupError) as exc:
        # aiohttp's multipart parser raises these for a missing or wrong boundary and malformed parts.
        raise ImageError(f"the multipart body could not be read: {exc}", code="not_an_image") from exc
    raise ImageError('the multipart body has no "image" field', code="not_an_image", status=400)

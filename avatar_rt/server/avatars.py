"""Prepared avatars, shared by every session that uses them.

Analysis (face mesh, crop, warp tables) runs once per distinct image, off the
event loop; sessions share the read-only result.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass

import cv2
import numpy as np

from avatar_rt.avatar.reference import Portrait, load_portrait
from avatar_rt.avatar.rest_mouth import close_rest_mouth
from avatar_rt.edits.attributes import bake_static
from avatar_rt.edits.store import EditStore
from avatar_rt.errors import NotFoundError
from avatar_rt.render.renderer import PortraitRenderer

# Avatars kept prepared in memory besides the pinned default: ~7 MB each at 512 px (renderer tables and
# images), so uploads cannot grow the server (benchmarks/upload_memory.py: 50 new photos, +18.4 MB with
# two kept, +9.3 MB with one). The last one used stays, for the Start that follows its upload; a
# session holds its own avatar; the rest come back from their stored analysis in ~0.1 s. Variants (static edits baked in)
# likewise: a dragged shape slider makes a new one per step.
MEMORY_AVATARS = 1
MEMORY_VARIANTS = 4
THUMBNAIL_PX = 160  # a side of the gallery's thumbnails; small enough for dozens on a phone
THUMBNAIL_CACHE = 64  # thumbnails kept in memory (~6 KB each)


@dataclass(frozen=True)
class Avatar:
    avatar_id: str
    portrait: Portrait
    renderer: PortraitRenderer
    jpeg: bytes

    def describe(self) -> dict:
        return {
            "avatar_id": self.avatar_id,
            "width": self.portrait.size,
            "height": self.portrait.size,
            "face_box": self.portrait.face_box(),
            "mouth_box": self.portrait.mouth_box(),
        }


def prepare_avatar(data: bytes, size: int) -> Avatar:
    portrait = load_portrait(data, size=size)
    ok, jpeg = cv2.imencode(".jpg", portrait.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    avatar_id = hashlib.sha256(data).hexdigest()[:16] + f"-{size}"
    return Avatar(avatar_id, portrait, PortraitRenderer(portrait), jpeg.tobytes() if ok else b"")


def _libc_trim():
    """glibc's malloc_trim, or None elsewhere (musl, macOS): nothing to do there."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


_MALLOC_TRIM = _libc_trim()


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS. An analysis allocates and frees tens of MB in a worker
    thread, and glibc keeps them in that thread's arena: 50 new photos left the server +34 MB without
    this, +16 MB with it when two avatars were kept prepared (benchmarks/upload_memory.py)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def make_thumbnail(image: bytes) -> bytes:
    """A small JPEG of an encoded image (the prepared portrait, or its stored analysis)."""
    pixels = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError("the stored portrait could not be decoded")
    small = cv2.resize(pixels, (THUMBNAIL_PX, THUMBNAIL_PX), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 82])
    return jpeg.tobytes()


def _prepare_and_trim(data: bytes, size: int) -> Avatar:
    """prepare_avatar, then the trim, in the worker thread: it takes up to ~30 ms, never the event loop's."""
    try:
        return prepare_avatar(data, size)
    finally:
        release_freed_memory()  # a refused photo's analysis too


def _from_analysis(avatar_id: str, portrait_png: bytes, landmarks: bytes) -> Avatar:
    """The stored analysis is of the photo as it was; the closed rest mouth is rebuilt from it."""
    image = cv2.imdecode(np.frombuffer(portrait_png, np.uint8), cv2.IMREAD_COLOR)
    points = np.frombuffer(landmarks, np.float32).reshape(-1, 3).copy()
    portrait = close_rest_mouth(Portrait(image=image, landmarks=points))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return Avatar(avatar_id, portrait, PortraitRenderer(portrait), jpeg.tobytes() if ok else b"")


class AvatarStore:
    def __init__(self, size: int, executor: Executor | None = None, capacity: int = MEMORY_AVATARS,
                 store: EditStore | None = None):
        self.size = size
        self.store = store  # uploaded images are kept there, so their ids survive a restart
        self._executor = executor
        self._capacity = capacity
        self._avatars: OrderedDict[str, Avatar] = OrderedDict()
        self._variants: OrderedDict[str, Avatar] = OrderedDict()
        self._pinned: set[str] = set()
        self._thumbnails: OrderedDict[str, bytes] = OrderedDict()

    async def add(self, data: bytes, *, pinned: bool = False) -> Avatar:
        key = hashlib.sha256(data).hexdigest()[:16] + f"-{self.size}"
        if key in self._avatars:
            self._avatars.move_to_end(key)
            return self._avatars[key]
        loop = asyncio.get_running_loop()
        avatar = await loop.run_in_executor(self._executor, _prepare_and_trim, data, self.size)
        if self.store is not None:
            # In the worker too: a PNG of a phone photo takes ~0.1-0.5 s, and the blobs are committed with an fsync.
            await loop.run_in_executor(self._executor, self._persist, avatar, data)
        self._remember(avatar, pinned)
        return avatar

    def _persist(self, avatar: Avatar, data: bytes) -> None:
        """The uploaded image and its analysis (the photo as a PNG, its landmarks), so a restart finds them."""
        self.store.save_avatar(avatar.avatar_id, data)
        p = avatar.portrait
        photo, photo_points = (p.image, p.landmarks) if p.photo is None else (p.photo, p.photo_landmarks)
        ok, png = cv2.imencode(".png", photo)
        if ok:
            self.store.save_analysis(avatar.avatar_id, png.tobytes(), photo_points.tobytes())

    def _remember(self, avatar: Avatar, pinned: bool = False) -> None:
        self._avatars[avatar.avatar_id] = avatar
        if pinned:
            self._pinned.add(avatar.avatar_id)
        unpinned = [k for k in self._avatars if k not in self._pinned]  # oldest first
        for key in unpinned[: max(0, len(unpinned) - self._capacity)]:
            self._avatars.pop(key)

    async def variant(self, avatar: Avatar, attributes: dict, appearance: dict, key: str,
                      mouth_rest: str = "closed") -> Avatar:
        """The avatar with static edits baked in (cached: sessions with the same edits share it)."""
        if not key:
            return avatar
        cache_key = f"{avatar.avatar_id}|{key}"
        if cache_key in self._variants:
            self._variants.move_to_end(cache_key)
            return self._variants[cache_key]
        loop = asyncio.get_running_loop()

        def build() -> Avatar:
            portrait = bake_static(avatar.portrait, attributes, appearance, mouth_rest)
            return Avatar(avatar.avatar_id, portrait, PortraitRenderer(portrait), avatar.jpeg)

        variant = await loop.run_in_executor(self._executor, build)
        self._variants[cache_key] = variant
        while len(self._variants) > MEMORY_VARIANTS:
            self._variants.popitem(last=False)
        return variant

    async def get_or_restore(self, avatar_id: str) -> Avatar:
        """An avatar in memory, or one uploaded before a restart: from its cached analysis, else its image."""
        if avatar_id not in self._avatars and self.store is not None:
            cached = self.store.analysis(avatar_id)
            data = self.store.avatar_image(avatar_id)
            if cached is not None and data is not None:
                loop = asyncio.get_running_loop()
                avatar = await loop.run_in_executor(self._executor, _from_analysis, avatar_id, *cached)
                self._remember(avatar)
                return avatar
            if data is not None:
                return await self.add(data)
        return self.get(avatar_id)

    def get(self, avatar_id: str) -> Avatar:
        try:
            return self._avatars[avatar_id]
        except KeyError:
            raise NotFoundError(f"no avatar with id {avatar_id!r}; upload one with POST /v1/avatars",
                                code="unknown_avatar") from None

    def listing(self) -> list[tuple[str, float]]:
        """(avatar_id, uploaded at) of every avatar of this size, newest first: stored ones, else those in memory."""
        if self.store is None:
            return [(key, 0.0) for key in reversed(self._avatars)]
        return self.store.avatar_rows(suffix=f"-{self.size}")

    def known(self, avatar_id: str) -> bool:
        return avatar_id in self._avatars or (self.store is not None and self.store.has_avatar(avatar_id))

    async def thumbnail(self, avatar_id: str) -> bytes:
        """A small JPEG of the prepared portrait, from memory or the stored analysis (no face mesh run)."""
        if avatar_id in self._thumbnails:
            self._thumbnails.move_to_end(avatar_id)
            return self._thumbnails[avatar_id]
        if avatar_id in self._avatars:
            source = self._avatars[avatar_id].jpeg
        else:
            cached = self.store.analysis(avatar_id) if self.store is not None else None
            source = cached[0] if cached is not None else (await self.get_or_restore(avatar_id)).jpeg
        thumb = await asyncio.get_running_loop().run_in_executor(self._executor, make_thumbnail, source)
        if not self.known(avatar_id):  # deleted while it was being made: not cached, not served
            self.get(avatar_id)
        self._thumbnails[avatar_id] = thumb
        while len(self._thumbnails) > THUMBNAIL_CACHE:
            self._thumbnails.popitem(last=False)
        return thumb

    def delete(self, avatar_id: str) -> None:
        """The avatar, its analysis, its edits and their history, from the store and from memory."""
        stored = self.store.delete_avatar(avatar_id) if self.store is not None else False
        if not stored and avatar_id not in self._avatars:
            self.get(avatar_id)  # raises unknown_avatar
        self._avatars.pop(avatar_id, None)
        self._pinned.discard(avatar_id)
        self._thumbnails.pop(avatar_id, None)
        for key in [k for k in self._variants if k.startswith(avatar_id + "|")]:
            self._variants.pop(key)

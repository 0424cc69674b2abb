"""Prepared avatars, shared by every session that uses them.

Analysis (face mesh, crop, warp tables) runs once per distinct image, off the
event loop; sessions share the read-only result.
"""

from __future__ import annotations

import asyncio
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


def _from_analysis(avatar_id: str, portrait_png: bytes, landmarks: bytes) -> Avatar:
    """The stored analysis is of the photo as it was; the closed rest mouth is rebuilt from it."""
    image = cv2.imdecode(np.frombuffer(portrait_png, np.uint8), cv2.IMREAD_COLOR)
    points = np.frombuffer(landmarks, np.float32).reshape(-1, 3).copy()
    portrait = close_rest_mouth(Portrait(image=image, landmarks=points))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return Avatar(avatar_id, portrait, PortraitRenderer(portrait), jpeg.tobytes() if ok else b"")


class AvatarStore:
    def __init__(self, size: int, executor: Executor | None = None, capacity: int = 32,
                 store: EditStore | None = None):
        self.size = size
        self.store = store  # uploaded images are kept there, so their ids survive a restart
        self._executor = executor
        self._capacity = capacity
        self._avatars: OrderedDict[str, Avatar] = OrderedDict()
        self._variants: OrderedDict[str, Avatar] = OrderedDict()
        self._pinned: set[str] = set()

    async def add(self, data: bytes, *, pinned: bool = False) -> Avatar:
        key = hashlib.sha256(data).hexdigest()[:16] + f"-{self.size}"
        if key in self._avatars:
            self._avatars.move_to_end(key)
            return self._avatars[key]
        loop = asyncio.get_running_loop()
        avatar = await loop.run_in_executor(self._executor, prepare_avatar, data, self.size)
        if self.store is not None:
            self.store.save_avatar(avatar.avatar_id, data)
            p = avatar.portrait
            photo, photo_points = (p.image, p.landmarks) if p.photo is None else (p.photo, p.photo_landmarks)
            ok, png = cv2.imencode(".png", photo)
            if ok:
                self.store.save_analysis(avatar.avatar_id, png.tobytes(), photo_points.tobytes())
        self._avatars[avatar.avatar_id] = avatar
        if pinned:
            self._pinned.add(avatar.avatar_id)
        while len(self._avatars) > self._capacity:
            oldest = next((k for k in self._avatars if k not in self._pinned), None)
            if oldest is None:
                break
            self._avatars.pop(oldest)
        return avatar

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
        while len(self._variants) > self._capacity:
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
                self._avatars[avatar_id] = avatar
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

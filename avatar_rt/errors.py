"""Errors a client can cause, each with a stable code and the HTTP status it maps to."""

from __future__ import annotations


class AvatarRtError(Exception):
    """Base for errors caused by input; the message is shown to the user as is."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class ImageError(AvatarRtError):
    """The bytes are not an image we can use."""

    code = "not_an_image"
    status = 415


class ImageTooLargeError(AvatarRtError):
    code = "image_too_large"
    status = 413


class FaceError(AvatarRtError):
    """An image decoded fine but its face cannot be animated (none, several, too small, profile)."""

    code = "no_face"
    status = 422


class NotFoundError(AvatarRtError):
    code = "not_found"
    status = 404


class LimitError(AvatarRtError):
    code = "session_limit"
    status = 503

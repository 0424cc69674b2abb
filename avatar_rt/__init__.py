"""avatar_rt: a portrait speaks live audio back as lip-synced video over WebRTC."""

__version__ = "0.1.0"

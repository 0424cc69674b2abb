"""Persistent edits: emotion, speaking style and behaviour acting on the motion vector every frame."""

"""Lip sync training: synthetic speech with exact phoneme timings → articulation targets (docs/lipsync.md)."""

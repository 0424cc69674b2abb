"""Random espeak-ng voice variants, so stage A hears more voices than the installed ones.

The held-out evaluation uses installed variants never heard in training
(`data.HELDOUT_VARIANTS`); with the 88 other installed ones the network still
met few spectra, and held-out jaw correlation trailed validation by 0.05
(docs/lipsync.md). A generated variant scales each formant's frequency, strength
and width on its own (what the installed variants do by hand, e.g. F1 ×1.35 and
F2 ×1.31 in one, F3 removed in another), and draws pitch, voicing, consonant
strength, flutter, roughness, breath, spectral tone and a Klatt mode.

Ranges span the installed variant files' own (read from their `formant` lines:
F1 75–135 %, F2 70–150 %, F3 57–145 %, widths 40–180 %), without copying any
file; strengths stay at or below 125 %, where the voices clip about as rarely
as the installed ones. Klatt mode 3 is left out: only the held-out `klatt3`
uses it.
"""

from __future__ import annotations

import numpy as np

KLATT_MODES = (1, 2, 4, 5, 6)
# Per formant 0-8: (frequency %, strength %, width %) ranges.
_FORMANTS = (
    ((60, 130), (50, 120), (60, 160)),
    ((75, 135), (50, 125), (50, 170)),
    ((72, 145), (50, 125), (50, 160)),
    ((75, 140), (40, 125), (50, 160)),
    ((75, 130), (30, 110), (50, 160)),
    ((75, 130), (20, 110), (50, 160)),
    ((75, 130), (0, 100), (50, 160)),
    ((75, 130), (0, 100), (50, 160)),
    ((75, 130), (0, 100), (50, 160)),
)


def variant_text(rng: np.random.Generator, name: str) -> str:
    """An espeak-ng variant file (voices/!v format) with randomly drawn voice quality."""
    female = rng.random() < 0.5
    base = rng.uniform(140, 230) if female else rng.uniform(65, 135)
    lines = [f"name {name}", "language variant", f"gender {'female' if female else 'male'}",
             f"pitch {base:.0f} {base * rng.uniform(1.15, 1.7):.0f}"]
    for i, ranges in enumerate(_FORMANTS):
        f, s, w = (rng.uniform(lo, hi) for lo, hi in ranges)
        if i == 3 and rng.random() < 0.05:
            s = 0.0  # a voice without F3 (as one installed variant has)
        lines.append(f"formant {i} {f:.0f} {s:.0f} {w:.0f}")
    lines += [f"voicing {rng.uniform(40, 170):.0f}",
              f"consonants {rng.uniform(50, 120):.0f} {rng.uniform(50, 120):.0f}",
              f"flutter {rng.choice([0, 1, 2, 3, 5, 20])}",
              f"roughness {rng.integers(0, 6)}"]
    if rng.random() < 0.3:
        lines.append("tone 600 255 1200 {:.0f} 2000 {:.0f} 3000 {:.0f}".format(
            rng.uniform(60, 255), rng.uniform(20, 255), rng.uniform(10, 255)))
    if rng.random() < 0.15:
        lines.append("breath " + " ".join(str(int(v)) for v in rng.integers(0, 7, 8)))
    if rng.random() < 0.25:
        lines.append(f"klatt {rng.choice(KLATT_MODES)}")
    return "\n".join(lines) + "\n"

"""How a voice's segment times sit on its waveform: the bilabial-stop closure test.

For every p/b after a vowel, the acoustic closure is where the 1–5 kHz level (a centred 5 ms
window) falls halfway (in dB) from the vowel's level to the closure's floor; its offset from
the segment's labelled start is what the lip model is taught. Positive: the segment starts
before the sound closes (the label closes the lips early). The method reads espeak-ng's
sample-exact stop onsets as +0.5 ms (p) and +3.6 ms (b), its own bias.

    python -m export.lipsync.closure_check [--n 40] [--voices flite:awb festival:pc_diphone ...]

prints, per voice, the median offset and quartiles (ms) of p, b and m, and seconds per utterance.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.signal import butter, sosfiltfilt

from export.lipsync import phonemes as ph
from export.lipsync import registry, sentences, synth

SR = synth.SAMPLE_RATE
_BAND = butter(4, [1000, 5000], btype="band", fs=SR, output="sos")


def band_level_db(audio: np.ndarray, win_s: float = 0.005) -> np.ndarray:
    """Per sample, the level (dB) of the 1–5 kHz band in a centred window."""
    win = int(win_s * SR)
    x = sosfiltfilt(_BAND, audio.astype(np.float64))
    c = np.cumsum(np.concatenate([np.zeros(win // 2 + 1), x ** 2, np.zeros(win)]))
    return 10 * np.log10((c[win:win + len(x)] - c[:len(x)]) / win + 1.0)


def closure_offsets(utterances: list[synth.Utterance], phones=("P", "B", "M"),
                    min_drop_db: float = 10.0) -> dict[str, list[float]]:
    """Offsets (ms) of the acoustic closure from the labelled start, per bilabial after a vowel."""
    out: dict[str, list[float]] = {p: [] for p in phones}
    for u in utterances:
        level = band_level_db(u.audio)
        for i in range(1, len(u.phonemes)):
            p = u.phonemes[i]
            if p not in out or u.phonemes[i - 1] not in ph.VOWELS:
                continue
            a, s, e = (int(t * SR) for t in (u.starts[i - 1], u.starts[i], u.ends[i]))
            if s - a < int(0.04 * SR) or e - s < int(0.03 * SR):
                continue
            vowel = np.median(level[a + (s - a) // 4: s - (s - a) // 4])
            lo, hi = int(max(a + (s - a) // 2, s - 0.06 * SR)), int(min(e, s + 0.06 * SR))
            floor = level[s:hi].min()
            if vowel - floor < min_drop_db:
                continue  # no clear closure to time
            half = vowel - 0.5 * (vowel - floor)
            k = lo
            while k < hi and level[k] > half:
                k += 1
            out[p].append((k - s) / SR * 1000)
    return out


def _texts(info: registry.VoiceInfo, n: int, seed: int) -> list[str]:
    if info.language == "en":
        return sentences.sentences(n, seed)
    return sentences.language_sentences(info.language, n, seed)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="sentences per voice")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--voices", nargs="*", default=None, help="registry keys (default: all but most espeak bases)")
    a = ap.parse_args(argv)
    keys = a.voices or [k for k, v in registry.VOICES.items() if v.engine != "espeak"] + ["espeak:en-us"]
    for key in keys:
        info = registry.voice_info(key)
        if not info.available():
            print(f"{key:28s} not installed")
            continue
        t = time.perf_counter()
        utts = registry.synthesize(key, _texts(info, a.n, a.seed))
        per_utt = (time.perf_counter() - t) / len(utts)
        offs = closure_offsets(utts)

        def fmt(x: list[float]) -> str:
            if not x:
                return "n=0"
            return f"n={len(x)} {np.median(x):+.1f} [{np.percentile(x, 25):+.0f},{np.percentile(x, 75):+.0f}]"
        print(f"{key:28s} {info.family:17s} {per_utt:.3f} s/utt | p+b {fmt(offs['P'] + offs['B'])} | "
              f"p {fmt(offs['P'])} | b {fmt(offs['B'])} | m {fmt(offs['M'])}", flush=True)


if __name__ == "__main__":
    main()

"""Forced alignment of a transcript to real speech: PocketSphinx 5 (bundled en-US model + cmudict).

    align(audio, text) -> synth.Utterance   # 16 kHz mono int16 in; ARPAbet + `sil` segments out

How it works:
  1. The text is normalised to dictionary words (`normalise`): case, punctuation, numbers
     ("42" → "forty two", "1st" → "first", "1990" → "nineteen ninety"), symbols (`#` → pound,
     `*` → star, `&` → and, `%` → percent); bracketed text (`[beep tone]`) is not speech and is
     dropped. A word that cmudict lacks gets **espeak-ng's pronunciation** (the phoneme events
     of libespeak-ng, mapped to ARPAbet by `phonemes.espeak_to_arpabet`) and is added to the
     decoder's dictionary for this process; `Alignment.oov` lists those words.
  2. The audio gets 0.25 s of low-level noise on both sides (prompt recordings are trimmed
     tight; the aligner needs room for its `sil` model), then PocketSphinx aligns in two passes:
     word alignment through a finite-state grammar of the words (optional silence and
     pronunciation variants between them), then a state-level alignment of the phones
     (`Decoder.set_alignment`). Frames are 10 ms; a boundary between frames k−1 and k is put
     at k·10 ms (`BOUNDARY_OFFSET`, set from signal evidence). One decoder serves the process
     (behind a lock); its front end is re-initialised for every pass, so a result does not
     depend on what was aligned before (its noise estimate otherwise carries over).
  3. Checks that raise `AlignmentError` (a clear message saying which):
     * the audio holds no speech (its loudest 10 ms is below −50 dBFS or it spans < 0.1 s);
     * the grammar cannot be completed (no hypothesis, or fewer words than asked);
     * the transcript does not fit the audio: the mean per-frame acoustic gap between the
       forced path and the best senone of each frame (PocketSphinx's normalised phone scores,
       in its own log units, over the speech phones) is above `MAX_GAP`, or more than
       `MAX_LOUD_SILENCE` seconds of loud sound (within `LOUD_DB` of the loudest 10 ms) was
       aligned to silence — how a wrong or partial transcript shows up. Set on the asterisk
       prompts: of the 538 that align to their own text 10 (1.9 %) are rejected; of 1 088
       recordings paired with another prompt's text 26 (2.4 %) pass, nearly all one-word prompts.
  4. PocketSphinx's filler phones (SIL, +NSN+, +SPN+, ...) become `sil`; adjacent silences merge;
     segments are shifted back by the padding, clipped to the audio and made to tile
     [0, duration] exactly.

The result's `raw` holds PocketSphinx's own phone names (before mapping) and `voice` is the
caller's (default "real").
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field

import numpy as np

from export.lipsync import phonemes as ph
from export.lipsync.synth import SAMPLE_RATE, Utterance

log = logging.getLogger(__name__)

FRAME = 0.01  # PocketSphinx's frame shift
# Frame k−1 | k boundary = k·FRAME + this. The centres of the two 25.6 ms windows would put it at
# +7.8 ms, but then p/b/m closures and stop releases measured on the signal came out ~8 ms late
# (median over asterisk + pocketsphinx-testdata; see tests/test_align.py and the report): 0.
BOUNDARY_OFFSET = 0.0
PAD_SECONDS = 0.25  # noise added on both sides before aligning (a whole number of frames)
MIN_SPEECH_DBFS = -50.0  # loudest 10 ms below this: no speech
# Mean per-frame gap (PocketSphinx log units, speech phones only) between the forced path and
# each frame's best senone above which the transcript is taken not to fit the audio. Calibrated
# on asterisk prompts (own vs. another prompt's text).
MAX_GAP = 25.0
# Longest stretch aligned to silence whose level is within LOUD_DB of the loudest 10 ms: above
# MAX_LOUD_SILENCE seconds the transcript is missing words.
LOUD_DB = 25.0
MAX_LOUD_SILENCE = 0.3


class AlignmentError(ValueError):
    """The transcript could not be aligned to the audio (no speech, text does not fit, ...)."""


# ---------------------------------------------------------------- text normalisation

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
        "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"#": " pound ", "*": " star ", "&": " and ", "%": " percent ", "@": " at ", "+": " plus ",
            "=": " equals ", "$": " dollars "}


def number_words(n: int) -> list[str]:
    """Cardinal number in words (0 ≤ n < 10¹²)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            return number_words(n // size) + [name] + (number_words(n % size) if n % size else [])
    raise ValueError(n)


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORD:
        last = _ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return words[:-1] + [last]


def _say_number(token: str) -> list[str]:
    m = re.fullmatch(r"(\d+)(st|nd|rd|th)?", token)
    if not m:
        return [w for d in token for w in (number_words(int(d)) if d.isdigit() else [])]
    digits, suffix = m.groups()
    n = int(digits)
    if suffix:
        return _ordinal(number_words(n))
    if len(digits) > 1 and digits[0] == "0" or len(digits) > 12:
        return [_ONES[int(d)] for d in digits]  # a code or phone number: digit by digit
    if len(digits) == 4 and 1100 <= n <= 2099 and n % 100 and not (2000 <= n <= 2009):
        return number_words(n // 100) + (["oh"] if n % 100 < 10 else []) + number_words(n % 100)  # a year
    return number_words(n)


def normalise(text: str) -> list[str]:
    """Text → lower-case words for the dictionary (numbers spelled out, punctuation gone)."""
    text = re.sub(r"\[[^\]]*\]", " ", text)  # [ascending tones]: not speech
    text = text.replace("’", "'").replace("‘", "'")
    for sym, word in _SYMBOLS.items():
        text = text.replace(sym, word)
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)  # 1,000
    text = re.sub(r"(\d)\.(\d)", r"\1 point \2", text)
    text = re.sub(r"(\d+(?:st|nd|rd|th)?)", r" \1 ", text, flags=re.I)
    words: list[str] = []
    for tok in re.split(r"[\s\-–—/,.;:!?\"()]+", text):
        tok = tok.strip("'").lower()
        if not tok:
            continue
        if re.fullmatch(r"\d+(st|nd|rd|th)?", tok):
            words += _say_number(tok)
        else:
            tok = re.sub(r"[^a-z']", "", tok)
            if tok:
                words.append(tok)
    return words


# ---------------------------------------------------------------- the decoder

def _espeak_phones(word: str) -> list[str]:
    """ARPAbet phones of one word from libespeak-ng's phoneme events (en-us)."""
    from export.lipsync.synth import Espeak, espeak_available

    if not espeak_available():
        raise AlignmentError(f"{word!r} is not in cmudict and espeak-ng (libespeak-ng) is not installed")
    _, events = Espeak.get()._run(word, "en-us", 175, 50, 50)
    out = [p for _, name in events for p in ph.espeak_to_arpabet(name) if p != ph.SIL]
    if not out:
        raise AlignmentError(f"espeak-ng gives no phonemes for {word!r}")
    return out


@dataclass
class _Aligner:
    decoder: object
    lock: threading.Lock = field(default_factory=threading.Lock)
    added: dict[str, str] = field(default_factory=dict)  # OOV word → ARPAbet string added to the dictionary


_ALIGNER: _Aligner | None = None
_ALIGNER_LOCK = threading.Lock()


def _aligner() -> _Aligner:
    global _ALIGNER
    with _ALIGNER_LOCK:
        if _ALIGNER is None:
            try:
                from pocketsphinx import Decoder
            except ImportError as e:  # the `train` extra brings it
                raise RuntimeError("forced alignment needs pocketsphinx==5.1.1 (pip install pocketsphinx)") from e
            # The bundled model's feat.params (batch CMN, noise removal, 130–6800 Hz) are read with it;
            # its C-level messages are silenced: every failure raises AlignmentError instead.
            _ALIGNER = _Aligner(Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL", cmn="batch"))
        return _ALIGNER


def lookup(words: list[str]) -> tuple[list[str], list[str]]:
    """(dictionary words, OOV words given espeak-ng pronunciations). Adds the OOV ones to the decoder."""
    al = _aligner()
    oov = []
    with al.lock:
        for w in words:
            if al.decoder.lookup_word(w) is None:
                phones = " ".join(_espeak_phones(w))
                al.decoder.add_word(w, phones, True)
                al.added[w] = phones
                log.info("OOV %r: espeak-ng pronunciation %s", w, phones)
            if w in al.added:
                oov.append(w)
    return words, oov


@dataclass
class Alignment:
    utterance: Utterance
    words: list[tuple[str, float, float]]  # (word as aligned, incl. pronunciation variant "(2)"), start, end
    gap: float  # mean per-frame acoustic gap to the best senone (PocketSphinx units); lower = better fit
    oov: list[str]  # words pronounced by espeak-ng


def _frames_dbfs(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // 160
    x = audio[: n * 160].astype(np.float64).reshape(n, 160)
    return 10 * np.log10(np.mean(x * x, axis=1) / 32768.0**2 + 1e-12)


def align(audio: np.ndarray, text: str, voice: str = "real") -> Utterance:
    """Align `text` to `audio` (16 kHz mono int16): ARPAbet segments tiling [0, duration]."""
    return align_details(audio, text, voice).utterance


def align_details(audio: np.ndarray, text: str, voice: str = "real") -> Alignment:
    """`align` with the word timings, the fit score and the OOV words."""
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.dtype != np.int16:
        raise AlignmentError(f"audio must be 1-D int16 at {SAMPLE_RATE} Hz, got {audio.dtype} {audio.shape}")
    if len(audio) < 0.1 * SAMPLE_RATE:
        raise AlignmentError(f"audio too short to hold speech ({len(audio) / SAMPLE_RATE:.3f} s)")
    level = _frames_dbfs(audio)
    if level.max() < MIN_SPEECH_DBFS:
        raise AlignmentError(f"no speech in the audio (loudest 10 ms at {level.max():.1f} dBFS)")
    words = normalise(text)
    if not words:
        raise AlignmentError(f"no words to align in {text!r}")
    words, oov = lookup(words)

    # Low-level noise on both sides, at the level of the recording's quietest frames (≥ 1 LSB RMS),
    # seeded by the audio so the result is deterministic.
    pad = int(PAD_SECONDS * SAMPLE_RATE)
    floor = max(1.0, float(np.percentile(np.sqrt(10 ** (level / 10)) * 32768.0, 5)))
    rng = np.random.default_rng(len(audio))
    noise = np.clip(np.round(rng.standard_normal(2 * pad) * floor), -32768, 32767).astype(np.int16)
    padded = np.concatenate([noise[:pad], audio, noise[pad:]]).tobytes()

    al = _aligner()
    with al.lock:
        d = al.decoder
        # Feature extraction keeps state between utterances (its noise estimate): reset it, so an
        # alignment does not depend on what was aligned before.
        d.reinit_feat()
        try:
            d.set_align_text(" ".join(words))
        except RuntimeError as e:
            raise AlignmentError(f"PocketSphinx refused the text {words}: {e}") from e
        d.start_utt()
        d.process_raw(padded, full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            raise AlignmentError(f"alignment failed: the audio cannot be matched to {' '.join(words)!r}")
        d.set_alignment()
        d.reinit_feat()
        d.start_utt()
        d.process_raw(padded, full_utt=True)
        d.end_utt()
        result = d.get_alignment()
        if result is None:
            raise AlignmentError("alignment failed: no phone alignment")
        aligned_words = []
        phones: list[tuple[str, int, int, int]] = []  # name, start frame, frames, score
        for w in result:
            aligned_words.append((w.name, w.start, w.duration))
            for p in w:
                phones.append((p.name, p.start, p.duration, p.score))

    spoken = [re.sub(r"\(\d+\)$", "", w) for w, _, _ in aligned_words if not _is_filler(w)]
    if spoken != words:
        raise AlignmentError(f"alignment failed: aligned {spoken} for the words {words}")
    speech = [(n, s) for name, _, n, s in phones if not _is_filler(name)]
    gap = -sum(s for _, s in speech) / max(sum(n for n, _ in speech), 1)
    loud = _loud_silence(phones, level)
    if gap > MAX_GAP:
        raise AlignmentError(f"the transcript does not fit the audio: mean acoustic gap {gap:.1f} per speech frame "
                             f"> {MAX_GAP} (wrong or partial transcript?) for {text!r}")
    if loud > MAX_LOUD_SILENCE:
        raise AlignmentError(f"the transcript does not cover the audio: {loud:.2f} s of loud sound aligned to "
                             f"silence (> {MAX_LOUD_SILENCE} s; words missing from {text!r}?)")

    dur = len(audio) / SAMPLE_RATE

    def to_s(frame: int) -> float:
        return frame * FRAME + (BOUNDARY_OFFSET if frame > 0 else 0.0) - PAD_SECONDS

    names: list[str] = []
    edges: list[float] = []
    raw: list[str] = []
    for name, start, n, _ in phones:
        p = ph.SIL if _is_filler(name) else name
        if p not in ph.ARPABET:
            raise AlignmentError(f"unexpected phone {name!r} from PocketSphinx")
        a = min(max(to_s(start), 0.0), dur)
        if names and p == ph.SIL and names[-1] == ph.SIL:
            continue
        names.append(p)
        edges.append(a)
        raw.append(name)
    # Drop segments that the clipping to the audio emptied (the padding's share).
    keep = [i for i in range(len(names)) if (edges[i + 1] if i + 1 < len(edges) else dur) > edges[i]]
    names = [names[i] for i in keep]
    raw = [raw[i] for i in keep]
    starts = np.array([edges[i] for i in keep], dtype=np.float64)
    # Merging again: clipping may leave two silences side by side.
    merged = [0] + [i for i in range(1, len(names)) if not (names[i] == ph.SIL and names[i - 1] == ph.SIL)]
    names = [names[i] for i in merged]
    raw = [raw[i] for i in merged]
    starts = starts[merged]
    starts[0] = 0.0
    ends = np.append(starts[1:], dur)
    word_times = [(w, to_s(s), to_s(s + n)) for w, s, n in aligned_words if not _is_filler(w)]
    return Alignment(Utterance(audio, names, starts, ends, voice, text, raw), word_times, float(gap), oov)


def _loud_silence(phones: list[tuple[str, int, int, int]], level: np.ndarray) -> float:
    """Longest run (s) of frames aligned to a filler whose level is within LOUD_DB of the loudest frame."""
    pad = int(round(PAD_SECONDS / FRAME))
    loud = level > level.max() - LOUD_DB
    best = 0
    for name, start, n, _ in phones:
        if _is_filler(name):
            run = 0
            for k in range(max(start - pad, 0), min(start + n - pad, len(loud))):
                run = run + 1 if loud[k] else 0
                best = max(best, run)
    return best * FRAME


def _is_filler(name: str) -> bool:
    return name in ("SIL", "<sil>", "<s>", "</s>") or name.startswith("+") or name.startswith("[")


def model_info() -> str:
    """Where the acoustic model and dictionary come from (for metadata)."""
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us")

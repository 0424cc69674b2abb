"""Speech synthesis with exact phoneme timings: espeak-ng (libespeak-ng via ctypes) and Festival.

All return an `Utterance`: 16 kHz mono int16 audio and ARPAbet segments that tile
it exactly (starts[0] = 0, ends[i] = starts[i+1], ends[-1] = duration).

espeak-ng: phoneme events carry the sample index where each phoneme starts, so
boundaries are exact to the sample. Two places where espeak's event is not where
the mouth moves are corrected from the waveform itself:
  * a stop's closure is synthesized as a pause *before* its event (the `prepause`
    in espeak's Generate()), so the closure silence would belong to the previous
    phoneme; the stop's start is moved back to where that digital silence begins
    (lips shut at the start of the silence in "a map", not at the burst).
  * after a nasal, a vowel's event comes after the vowel's onset transition; the
    boundary is moved back to where the level jumps from the murmur to the vowel
    (the lips open for "ma" when the sound gets loud, not 30 ms later).

Festival: the Segment relation's end times, read from a Scheme script run by
`festival --batch`; the final pause is stretched to the wave's end. Nine voices in six
languages (`FESTIVAL_VOICES`: kal_diphone, Italian pc/lp, Catalan ona (HTS), Czech
dita/machac, Finnish lj/mv, Russian nsh (clunits)), each with its text encoding and a
phone map to ARPAbet (export.lipsync.phonemes).

flite lives in `export/lipsync/flite.py`, and the registry of every voice (`VOICES`,
`voice_info`, `synthesize`) in `export/lipsync/registry.py`; both use this module's
`Utterance` and segment helpers.

Timing: espeak's stop onsets are exact to the sample (corrected above). The others keep
their synthesizer's own segment times; measured against the waveform (the 1–5 kHz level
falling into a p/b closure after a vowel, `python -m export.lipsync.closure_check`), the
acoustic closure comes 0–20 ms after the segment's start (kal_diphone and Finnish lj
≈ +20 ms, the rest within ±12 ms): the lips are labelled closing slightly early.

The voices of `festvox-us-slt-hts`, `festvox-kdlpc16k` and flite's `slt` are reserved
for independent evaluation: every entry point refuses them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from export.lipsync import phonemes as ph

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ESPEAK_LIB = "/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1"
ESPEAK_DATA = "/usr/lib/x86_64-linux-gnu/espeak-ng-data"

# Reserved for independent evaluation (DESIGN.md): never synthesize with them.
RESERVED_VOICE_PATTERNS = ("slt", "kdl")


class ReservedVoiceError(ValueError):
    """The voice is reserved for independent evaluation and must not be used for training data."""


def check_voice(name: str) -> None:
    low = name.lower()
    if any(p in low for p in RESERVED_VOICE_PATTERNS):
        raise ReservedVoiceError(
            f"voice {name!r} is reserved for independent evaluation (festvox-us-slt-hts, festvox-kdlpc16k); "
            "training data must never use it")


@dataclass
class Utterance:
    audio: np.ndarray  # (n,) int16 at SAMPLE_RATE
    phonemes: list[str]  # ARPAbet, one per segment
    starts: np.ndarray  # (p,) float64 seconds
    ends: np.ndarray  # (p,) float64 seconds
    voice: str
    text: str
    raw: list[str] = field(default_factory=list)  # the synthesizer's own symbols, before mapping

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def _to_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling (Kaiser-windowed FIR): no aliasing from the 22.05 kHz espeak output."""
    x = audio.astype(np.float32)
    if rate != SAMPLE_RATE:
        g = np.gcd(SAMPLE_RATE, rate)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _segments(symbols: list[str], bounds: list[int], rate: int, n_out: int,
              mapper) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Synthesizer symbols with sample bounds → merged ARPAbet segments tiling [0, n_out/16k]."""
    names: list[str] = []
    edges: list[float] = []
    for sym, a, b in zip(symbols, bounds[:-1], bounds[1:]):
        if b <= a:
            continue  # an event with no samples of its own covers no time
        arpa = mapper(sym)
        step = (b - a) / len(arpa)  # two-sound symbols are split in equal halves
        for i, p in enumerate(arpa):
            if names and p == ph.SIL and names[-1] == ph.SIL:
                continue  # consecutive pauses are one silence
            names.append(p)
            edges.append((a + i * step) / rate)
    starts = np.array(edges, dtype=np.float64)
    ends = np.append(starts[1:], n_out / SAMPLE_RATE)
    starts[0] = 0.0
    return names, starts, ends


def _end_bounds(ends_s: list[float], rate: int, n: int) -> list[int]:
    """Sample bounds from segment end times (seconds); the last segment (a pause) is stretched to the wave's end."""
    bounds = [0] + [min(int(round(e * rate)), n) for e in ends_s[:-1]] + [n]
    return [int(b) for b in np.maximum.accumulate(bounds)]


# ---------------------------------------------------------------- espeak-ng

class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT in speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_DONT_EXIT = 0x0001, 0x8000
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_POS_CHARACTER, _CHARS_UTF8 = 1, 1


def espeak_available() -> bool:
    return Path(ESPEAK_LIB).exists()


def espeak_variants() -> list[str]:
    """The installed `+variant` names (files in espeak-ng-data/voices/!v), spaces excluded."""
    folder = Path(ESPEAK_DATA) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name) if folder.is_dir() else []


GENERATED_PREFIX = "gen"  # generated variants are named gen<digits>; no installed variant is


def _link_entries(src: Path, dst: Path, skip: str = "") -> None:
    """A new folder `dst` holding a symlink to every entry of `src` but `skip`."""
    dst.mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name != skip:
            (dst / entry.name).symlink_to(entry)


def _mirror_data(home: Path) -> Path:
    """A private espeak-ng data home: links to every installed file, except that `voices/!v` is a folder of its
    own (links to the installed variants), so generated variants can be added to this process only."""
    system, data = Path(ESPEAK_DATA), home / "espeak-ng-data"
    _link_entries(system, data, skip="voices")
    _link_entries(system / "voices", data / "voices", skip="!v")
    _link_entries(system / "voices" / "!v", data / "voices" / "!v")
    return data / "voices" / "!v"


class Espeak:
    """libespeak-ng in synchronous mode. The library is one global state per process,
    so there is one instance per process (`Espeak.get()`) and calls are serialised.

    It reads its data through a private mirror of the installed espeak-ng-data (`_mirror_data`), so that
    `add_variant` can give this process voice variants generated on the fly (export.lipsync.voices)."""

    _instance: Espeak | None = None

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(ESPEAK_LIB)
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._home = tempfile.TemporaryDirectory(prefix="espeak-home-")  # removed with the instance
        self._variants = _mirror_data(Path(self._home.name))
        self.rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._home.name.encode(),
                                                _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: list[bytes] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept alive: the library holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    @classmethod
    def get(cls) -> Espeak:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def add_variant(self, name: str, text: str) -> None:
        """Make `base+name` a voice of this process: `text` is an espeak-ng variant file (voices/!v format)."""
        if not re.fullmatch(GENERATED_PREFIX + r"\d+", name):
            raise ValueError(f"generated variant names are {GENERATED_PREFIX}<digits>, not {name!r}")
        path = self._variants / name
        if path.is_symlink():
            path.unlink()  # never write through a link into the installed data
        path.write_text(text)

    def _collect(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(ctypes.string_at(wav, n * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                # `sample` is the exact sample index; audio_position is the same in whole ms.
                self._events.append((e.sample, bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace")))
            i += 1
        return 0  # 0 = go on synthesizing

    def _run(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int):
        """Raw synthesis: (audio at self.rate, [(sample, mnemonic), ...] phoneme events)."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range)):
                self._lib.espeak_SetParameter(param, int(value), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed ({err})")
            return np.frombuffer(b"".join(self._chunks), dtype=np.int16).copy(), list(self._events)

    def synth(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50,
              pitch_range: int = 50) -> Utterance:
        """Speak `text` with `voice` (e.g. "en-gb+m3"), `rate` in words per minute, pitch 0–100."""
        check_voice(voice)
        audio22, events = self._run(text, voice, rate, pitch, pitch_range)
        if not len(audio22):
            raise ValueError(f"espeak-ng produced no audio for {text!r}")
        symbols, bounds = _bounds(events, len(audio22))
        first = [ph.espeak_to_arpabet(s)[0] for s in symbols]
        last = [ph.espeak_to_arpabet(s)[-1] for s in symbols]
        closures = _closures(audio22, self.rate, first, last, bounds)
        if "+" in voice:
            # Variants with echo or breath noise fill the closure silence. Its length does
            # not depend on the variant (espeak's prepause depends on the phonemes and the
            # rate only), so it is measured on the same text spoken by the plain base voice.
            twin_audio, twin_events = self._run(text, voice.split("+")[0], rate, pitch, pitch_range)
            if [n for _, n in twin_events] == [n for _, n in events]:
                closures = _closures(twin_audio, self.rate, first, last, _bounds(twin_events, len(twin_audio))[1])
        _apply_closures(closures, self.rate, bounds)
        _move_nasal_releases(audio22, self.rate, first, last, bounds)
        audio = _to_16k(audio22, self.rate)
        names, starts, ends = _segments(symbols, bounds, self.rate, len(audio), ph.espeak_to_arpabet)
        return Utterance(audio, names, starts, ends, f"espeak:{voice}", text, symbols)


def _bounds(events: list[tuple[int, str]], n: int) -> tuple[list[str], list[int]]:
    """Symbols with their sample bounds; the stretch before the first event is silence."""
    symbols = ["_"] + [name for _, name in events]
    bounds = [0] + [min(max(s, 0), n) for s, _ in events] + [n]
    return symbols, [int(b) for b in np.maximum.accumulate(bounds)]  # events are in order; guard anyway


def _closures(audio: np.ndarray, rate: int, first: list[str], last: list[str], bounds: list[int]) -> list[int]:
    """Per segment, the digital silence (in samples) just before it when it is a stop after speech."""
    quiet = np.abs(audio.astype(np.int32)) <= 2
    out = [0] * len(first)
    for i in range(1, len(first)):
        if first[i] not in ph.STOPS or last[i - 1] == ph.SIL:
            continue  # after a pause the silence is the pause's
        j = bounds[i]
        while j > bounds[i - 1] and quiet[j - 1]:
            j -= 1
        out[i] = bounds[i] - j
    return out


def _apply_closures(closures: list[int], rate: int, bounds: list[int]) -> None:
    """Give each stop the closure silence that espeak puts before its event."""
    for i, c in enumerate(closures):
        if c >= int(0.005 * rate):
            a, b = bounds[i - 1], bounds[i]
            floor = a + max((b - a) // 3, int(0.015 * rate))  # the previous phoneme keeps some of itself
            bounds[i] = max(b - c, min(floor, b))


def _move_nasal_releases(audio: np.ndarray, rate: int, first: list[str], last: list[str],
                         bounds: list[int]) -> None:
    """Move a nasal→vowel boundary back to where the level jumps from the murmur to the vowel."""
    step, win = int(0.0025 * rate), int(0.010 * rate)  # a 10 ms RMS (longer than a pitch period) every 2.5 ms
    power = np.cumsum(np.concatenate([np.zeros(win // 2 + 1), audio.astype(np.float64) ** 2, np.zeros(win)]))
    env = np.sqrt((power[win:win + len(audio)] - power[:len(audio)]) / win + 1.0)  # centred moving RMS
    for i in range(1, len(first) - 1):
        if first[i] not in ph.VOWELS or last[i - 1] not in ph.NASALS:
            continue
        a, b = bounds[i - 1], bounds[i]
        c = min(bounds[i + 1], b + int(0.05 * rate))
        if b - a < 4 * step or c - b < 4 * step:
            continue
        murmur = np.median(env[a:(a + b) // 2])
        vowel = np.median(env[b:c])
        if vowel < 1.6 * murmur:
            continue  # no clear jump: keep espeak's boundary
        level = np.sqrt(murmur * vowel)  # halfway in dB
        lo = max((a + b) // 2, b - int(0.06 * rate))
        k = b
        while k - step >= lo and env[k - step] > level:
            k -= step
        bounds[i] = k


# ---------------------------------------------------------------- Festival

FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")


@dataclass(frozen=True)
class FestivalVoice:
    """One installed Festival voice: how to select it and how to read its phones."""
    name: str  # `(voice_<name>)`
    language: str  # ISO 639-1
    folder: str  # under FESTIVAL_VOICE_ROOT
    package: str  # the Debian package that installs it
    encoding: str  # the byte encoding its text front end reads (Festival is byte-based)
    phones: dict[str, tuple[str, ...]]  # its phone set → ARPAbet
    method: str  # "unisyn" (diphone, the Target F0 can be scaled), "clunits", "hts"
    f0_lr: bool = False  # int_lr_params is its F0 model (kal): FestivalRequest.f0_mean/f0_std apply

    @property
    def command(self) -> str:
        return f"(voice_{self.name})"

    def available(self) -> bool:
        return shutil.which("festival") is not None and (FESTIVAL_VOICE_ROOT / self.folder).is_dir()


# The Festival voices we know (which train and which are held out: export/lipsync/voicesets.py). Never
# festvox-us-slt-hts or festvox-kdlpc16k (reserved; check_voice refuses them).
FESTIVAL_VOICES: dict[str, FestivalVoice] = {v.name: v for v in (
    FestivalVoice("kal_diphone", "en", "english/kal_diphone", "festvox-kallpc16k", "utf-8",
                  ph.FESTIVAL_TO_ARPABET, "unisyn", f0_lr=True),
    FestivalVoice("pc_diphone", "it", "italian/pc_diphone", "festvox-itapc16k", "latin-1",
                  ph.ITALIAN_TO_ARPABET, "unisyn"),
    FestivalVoice("lp_diphone", "it", "italian/lp_diphone", "festvox-italp16k", "latin-1",
                  ph.ITALIAN_TO_ARPABET, "unisyn"),
    FestivalVoice("upc_ca_ona_hts", "ca", "catalan/upc_ca_ona_hts", "festvox-ca-ona-hts", "iso-8859-15",
                  ph.CATALAN_TO_ARPABET, "hts"),
    FestivalVoice("czech_dita", "cs", "czech/czech_dita", "festvox-czech-dita", "iso-8859-2",
                  ph.CZECH_TO_ARPABET, "unisyn"),
    FestivalVoice("czech_machac", "cs", "czech/czech_machac", "festvox-czech-machac", "iso-8859-2",
                  ph.CZECH_TO_ARPABET, "unisyn"),
    FestivalVoice("suo_fi_lj_diphone", "fi", "finnish/suo_fi_lj_diphone", "festvox-suopuhe-lj", "latin-1",
                  ph.FINNISH_TO_ARPABET, "unisyn"),
    FestivalVoice("hy_fi_mv_diphone", "fi", "finnish/hy_fi_mv_diphone", "festvox-suopuhe-mv", "latin-1",
                  ph.FINNISH_TO_ARPABET, "unisyn"),
    FestivalVoice("msu_ru_nsh_clunits", "ru", "russian/msu_ru_nsh_clunits", "festvox-ru", "utf-8",
                  ph.RUSSIAN_TO_ARPABET, "clunits"),
)}
assert not any(p in n.lower() for n in FESTIVAL_VOICES for p in RESERVED_VOICE_PATTERNS)


def festival_available(voice: str = "kal_diphone") -> bool:
    """Festival and this voice's package are installed (it may still fail to load: probe_festival_voices)."""
    v = FESTIVAL_VOICES.get(voice)
    return v is not None and v.available()




def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class FestivalRequest:
    text: str
    stretch: float = 1.0  # Duration_Stretch: > 1 is slower (every voice, HTS included)
    f0_mean: float = 105.0  # Hz, kal's default is 105 (voices with f0_lr only)
    f0_std: float = 14.0
    f0_scale: float = 1.0  # multiplies the F0 targets of a UniSyn diphone voice (ignored by clunits/HTS)


# Scales the F0 targets before UniSyn turns them into pitch marks (a UniSyn module hook).
_F0_HOOK = """(defvar avrt_f0_scale 1.0)
(define (avrt_scale_targets utt)
  (mapcar (lambda (x) (item.set_feat x "f0" (* avrt_f0_scale (item.feat x "f0")))) (utt.relation.items utt 'Target))
  utt)
(set! UniSyn_module_hooks
  (append (cond ((consp UniSyn_module_hooks) UniSyn_module_hooks) (UniSyn_module_hooks (list UniSyn_module_hooks)))
          (list avrt_scale_targets)))"""


def festival_synth(requests: list[FestivalRequest], voice: str = "kal_diphone",
                   timeout: float = 600.0) -> list[Utterance]:
    """Synthesize several utterances in one Festival process (its start-up dominates a short one).
    Raises RuntimeError (with Festival's own message) when the voice does not load or gives no segments."""
    check_voice(voice)
    if voice not in FESTIVAL_VOICES:
        raise ValueError(f"Festival voice {voice!r} is not one of the known Festival voices {tuple(FESTIVAL_VOICES)}")
    spec = FESTIVAL_VOICES[voice]
    if not spec.available():
        raise RuntimeError(f"Festival voice {voice} is not installed: apt-get install festival {spec.package}")
    for r in requests:
        try:
            r.text.encode(spec.encoding)
        except UnicodeEncodeError as e:
            raise ValueError(f"{voice} reads {spec.encoding}: cannot encode {r.text!r} ({e})") from None
    if spec.method != "unisyn" and any(r.stretch != 1.0 or r.f0_scale != 1.0 for r in requests):
        log.warning("festival:%s (%s) ignores Duration_Stretch and F0 changes: its prosody is its own",
                    voice, spec.method)
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        lines = [spec.command, '(format t "VOICE-LOADED\\n")']
        scale = spec.method == "unisyn" and any(r.f0_scale != 1.0 for r in requests)
        if scale:
            lines.append(_F0_HOOK)
        for i, r in enumerate(requests):
            wav = os.path.join(tmp, f"{i}.wav")
            lines.append(f"(Parameter.set 'Duration_Stretch {r.stretch:.3f})")
            if spec.f0_lr:
                lines.append(f"(set! int_lr_params '((target_f0_mean {r.f0_mean:.1f}) (target_f0_std {r.f0_std:.1f}) "
                             "(model_f0_mean 170) (model_f0_std 34)))")
            if scale:
                lines.append(f"(set! avrt_f0_scale {r.f0_scale:.4f})")
            lines += [
                f"(set! utt (utt.synth (eval (list 'Utterance 'Text {_scheme_string(r.text)}))))",
                f'(utt.save.wave utt "{wav}" \'riff)',
                f'(format t "UTT {i}\\n")',
                '(mapcar (lambda (s) (format t "SEG %s %f\\n" (item.name s) (item.feat s "end"))) '
                "(utt.relation.items utt 'Segment))",
            ]
        script = os.path.join(tmp, "run.scm")
        Path(script).write_bytes(("\n".join(lines) + "\n").encode(spec.encoding))
        proc = subprocess.run(["festival", "--batch", script], capture_output=True, timeout=timeout)
        stdout = proc.stdout.decode(spec.encoding, "replace")
        stderr = proc.stderr.decode(spec.encoding, "replace")
        if "VOICE-LOADED" not in stdout:
            raise RuntimeError(f"Festival voice {voice} failed to load: {stderr[-500:]}")
        segs: dict[int, list[tuple[str, float]]] = {}
        current = -1
        for line in stdout.splitlines():
            if m := re.fullmatch(r"UTT (\d+)", line.strip()):
                current = int(m.group(1))
                segs[current] = []
            elif (m := re.fullmatch(r"SEG (\S+) ([-\d.eE+]+)", line.strip())) and current >= 0:
                segs[current].append((m.group(1), float(m.group(2))))
        out = []
        to_arpabet = ph.mapper(spec.phones)
        for i, r in enumerate(requests):
            if i not in segs or not segs[i] or not os.path.exists(os.path.join(tmp, f"{i}.wav")):
                raise RuntimeError(f"festival:{voice} produced no segments for {r.text!r}: {stderr[-500:]}")
            with wave.open(os.path.join(tmp, f"{i}.wav")) as w:
                rate = w.getframerate()
                raw_audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            audio = _to_16k(raw_audio, rate)
            symbols = [s for s, _ in segs[i]]
            # Segment ends are in seconds; the last (a pause) is stretched to the wave's end.
            bounds = _end_bounds([e for _, e in segs[i]], rate, len(raw_audio))
            names, starts, ends = _segments(symbols, bounds, rate, len(audio), to_arpabet)
            out.append(Utterance(audio, names, starts, ends, f"festival:{voice}", r.text, symbols))
        return out


def probe_festival_voices(voices=None) -> dict[str, str]:
    """Which Festival voices work here: name → "ok" or the reason it does not (one short sentence each)."""
    from export.lipsync import sentences
    out = {}
    for name in voices or FESTIVAL_VOICES:
        spec = FESTIVAL_VOICES[name]
        if not spec.available():
            out[name] = f"not installed (apt-get install festival {spec.package})"
            continue
        try:
            festival_synth([FestivalRequest(sentences.probe_sentence(spec.language))], name)
            out[name] = "ok"
        except Exception as e:  # noqa: BLE001 - a report, not a control path
            out[name] = f"failed: {e}"
    return out

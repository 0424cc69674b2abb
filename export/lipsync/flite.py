"""flite (libflite 2.x via ctypes): speech with exact phone timings, as `synth.Utterance`.

The Segment relation's end times of the utterance flite synthesized, read in-process;
voices awb, rms (clustergen, statistical parametric from recordings), kal16 and kal
(diphone; the same speaker as Festival's kal). flite's `slt` is reserved for independent
evaluation and refused (`synth.check_voice`).
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.lipsync import phonemes as ph
from export.lipsync.synth import Utterance, _end_bounds, _segments, _to_16k, check_voice

FLITE_LIB_DIR = "/usr/lib/x86_64-linux-gnu"
# flite voices for training data. `slt` (the speaker of festvox-us-slt-hts) is reserved and never loaded;
# `awb_time` is a limited-domain talking clock, not a general voice.
FLITE_VOICES = ("awb", "rms", "kal16", "kal")


def flite_available(voice: str | None = None) -> bool:
    libs = ["libflite.so.1"] + [f"libflite_cmu_us_{v}.so.1" for v in ((voice,) if voice else FLITE_VOICES)]
    return all((Path(FLITE_LIB_DIR) / lib).exists() for lib in libs)


class _FliteWave(ctypes.Structure):  # cst_wave in cst_wave.h
    _fields_ = [("type", ctypes.c_char_p), ("sample_rate", ctypes.c_int), ("num_samples", ctypes.c_int),
                ("num_channels", ctypes.c_int), ("samples", ctypes.POINTER(ctypes.c_short))]


class _FliteVoice(ctypes.Structure):  # the head of cst_voice in cst_voice.h
    _fields_ = [("name", ctypes.c_char_p), ("features", ctypes.c_void_p), ("ffunctions", ctypes.c_void_p)]


@dataclass
class FliteRequest:
    text: str
    stretch: float = 1.0  # multiplies the voice's own duration_stretch (kal's is 1.1): > 1 is slower
    f0_mean: float | None = None  # Hz: int_f0_target_mean (None: the voice's own)
    f0_std: float | None = None  # Hz: int_f0_target_stddev (None: the voice's own)


class Flite:
    """libflite 2.x through ctypes (no headers needed: only the heads of cst_wave and cst_voice are read).
    The voices are registered once per process; calls are serialised (the voice features are shared state)."""

    _instance: Flite | None = None
    _P = ctypes.c_void_p

    def __init__(self) -> None:
        P, c_str = self._P, ctypes.c_char_p
        # RTLD_GLOBAL: the voice libraries resolve libflite's symbols (and the lexicon's) through it.
        self._lib = lib = ctypes.CDLL(os.path.join(FLITE_LIB_DIR, "libflite.so.1"), mode=ctypes.RTLD_GLOBAL)
        for name, res, args in (
                ("flite_synth_text", P, [c_str, P]), ("utt_wave", ctypes.POINTER(_FliteWave), [P]),
                ("utt_relation", P, [P, c_str]), ("relation_head", P, [P]), ("item_next", P, [P]),
                ("item_feat_float", ctypes.c_float, [P, c_str]), ("item_feat_string", c_str, [P, c_str]),
                ("feat_set_float", None, [P, c_str, ctypes.c_float]), ("feat_present", ctypes.c_int, [P, c_str]),
                ("feat_float", ctypes.c_float, [P, c_str]), ("feat_remove", ctypes.c_int, [P, c_str]),
                ("delete_utterance", None, [P])):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        lib.flite_init()
        self._voices: dict[str, ctypes.c_void_p] = {}
        self._keep: list[ctypes.CDLL] = []
        self._lock = threading.Lock()

    @classmethod
    def get(cls) -> Flite:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _voice(self, name: str):
        check_voice(name)
        if name not in FLITE_VOICES:
            raise ValueError(f"flite voice {name!r} is not one of the known flite voices {FLITE_VOICES}")
        if name not in self._voices:
            path = os.path.join(FLITE_LIB_DIR, f"libflite_cmu_us_{name}.so.1")
            if not Path(path).exists():
                raise FileNotFoundError(f"{path} is missing: apt-get install flite")
            vlib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            register = getattr(vlib, f"register_cmu_us_{name}")
            register.restype, register.argtypes = ctypes.POINTER(_FliteVoice), [ctypes.c_char_p]
            voice = register(None)
            if not voice:
                raise RuntimeError(f"flite could not register voice {name!r}")
            self._keep.append(vlib)
            self._voices[name] = voice
        return self._voices[name]

    def synth(self, request: FliteRequest, voice: str) -> Utterance:
        lib = self._lib
        with self._lock:
            v = self._voice(voice)
            feats = v.contents.features
            own_stretch = 1.0
            if lib.feat_present(feats, b"duration_stretch"):
                own_stretch = lib.feat_float(feats, b"duration_stretch")
            settings = {b"duration_stretch": own_stretch * request.stretch, b"int_f0_target_mean": request.f0_mean,
                        b"int_f0_target_stddev": request.f0_std}
            saved = {k: (lib.feat_float(feats, k) if lib.feat_present(feats, k) else None) for k in settings}
            try:
                for k, value in settings.items():
                    if value is not None:
                        lib.feat_set_float(feats, k, float(value))
                utt = lib.flite_synth_text(request.text.encode("utf-8"), ctypes.cast(v, self._P))
                if not utt:
                    raise RuntimeError(f"flite failed on {request.text!r}")
                try:
                    w = lib.utt_wave(utt).contents
                    if w.num_channels != 1:
                        raise RuntimeError(f"flite gave {w.num_channels} channels")
                    rate = int(w.sample_rate)
                    raw_audio = np.ctypeslib.as_array(w.samples, shape=(w.num_samples,)).astype(np.int16).copy()
                    segs = []
                    item = lib.relation_head(lib.utt_relation(utt, b"Segment"))
                    while item:
                        name = lib.item_feat_string(item, b"name").decode()
                        segs.append((name, float(lib.item_feat_float(item, b"end"))))
                        item = lib.item_next(item)
                finally:
                    lib.delete_utterance(utt)
            finally:
                for k, value in saved.items():  # the voice is shared: put its features back
                    if value is None:
                        lib.feat_remove(feats, k)
                    else:
                        lib.feat_set_float(feats, k, value)
        if not len(raw_audio) or not segs:
            raise ValueError(f"flite:{voice} produced no audio for {request.text!r}")
        audio = _to_16k(raw_audio, rate)
        symbols = [s for s, _ in segs]
        bounds = _end_bounds([e for _, e in segs], rate, len(raw_audio))
        names, starts, ends = _segments(symbols, bounds, rate, len(audio), ph.flite_to_arpabet)
        return Utterance(audio, names, starts, ends, f"flite:{voice}", request.text, symbols)


def flite_synth(texts: list[str | FliteRequest], voice: str = "rms", stretch: float = 1.0,
                f0_mean: float | None = None, f0_std: float | None = None) -> list[Utterance]:
    """Synthesize with libflite: 16 kHz int16 audio and ARPAbet segments tiling it, from flite's own
    Segment end times. A plain string uses `stretch`/`f0_mean`/`f0_std`; a `FliteRequest` carries its own.
    flite's `slt` voice is reserved for independent evaluation and refused."""
    check_voice(voice)
    fl = Flite.get()
    reqs = [t if isinstance(t, FliteRequest) else FliteRequest(t, stretch, f0_mean, f0_std) for t in texts]
    return [fl.synth(r, voice) for r in reqs]

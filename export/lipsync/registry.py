"""The registry of every synthetic voice the lip-sync data can speak with, whatever the engine.

`VOICES` (engine, family, gender, language, accent, speaker, controls) and
`synthesize(key, texts, stretch, f0_scale)`, one interface for espeak-ng, Festival and
flite. Which of them train and which judge is `export/lipsync/voicesets.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.lipsync.flite import FliteRequest, flite_available, flite_synth
from export.lipsync.synth import (FESTIVAL_VOICES, Espeak, FestivalRequest, Utterance, check_voice, espeak_available,
                                  festival_available, festival_synth)

@dataclass(frozen=True)
class VoiceInfo:
    """One training voice, whatever the engine. `key` is "<engine>:<voice>"."""
    engine: str  # "espeak" | "festival" | "flite"
    voice: str  # the engine's own name for it
    family: str  # synthesizer family, for leave-one-family-out: espeak, festival-diphone, festival-hts,
    #              festival-clunits, flite-cg, flite-diphone
    gender: str  # "m" | "f" (espeak: of the base voice; its variants are either)
    language: str  # ISO 639-1; sentences.sentence_in(rng, language, split) gives its texts
    accent: str
    speaker: str  # a speaker identity: two entries with the same speaker are one person (flite kal = Festival kal)
    native_rate: int  # Hz, before resampling to 16 kHz
    controls: tuple[str, ...]  # what `synthesize` can vary for it: "stretch" (rate), "f0" (pitch)
    f0_hz: float  # median F0 of its default voice (measured), the reference for f0_scale
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.voice}"

    def available(self) -> bool:
        if self.engine == "espeak":
            return espeak_available()
        if self.engine == "flite":
            return flite_available(self.voice)
        return festival_available(self.voice)


_ESPEAK_BASES = (  # (voice, accent): the English base voices data.py uses (TRAIN_BASES + HELDOUT_BASES)
    ("en", "British"), ("en-us", "US"), ("en-gb-scotland", "Scottish"), ("en-gb-x-gbclan", "Lancaster"),
    ("en-gb-x-rp", "British RP"), ("en-gb-x-gbcwmd", "West Midlands"), ("en-029", "Caribbean"),
    ("en-us-nyc", "New York"))

VOICES: dict[str, VoiceInfo] = {v.key: v for v in (
    *(VoiceInfo("espeak", name, "espeak", "m", "en", accent, f"espeak-{name}", 22050, ("stretch", "f0"), 100.0,
                "formant synthesis; `+variant` names (espeak_variants()) give other speakers, both genders")
      for name, accent in _ESPEAK_BASES),
    VoiceInfo("festival", "kal_diphone", "festival-diphone", "m", "en", "US", "kal", 16000, ("stretch", "f0"), 102.0,
              "residual-LPC diphones (festvox-kallpc16k)"),
    VoiceInfo("festival", "pc_diphone", "festival-diphone", "m", "it", "Italian", "it-pc", 16000, ("stretch", "f0"),
              112.0, "festvox-itapc16k"),
    VoiceInfo("festival", "lp_diphone", "festival-diphone", "f", "it", "Italian", "it-lp", 16000, ("stretch", "f0"),
              206.0, "festvox-italp16k"),
    VoiceInfo("festival", "czech_dita", "festival-diphone", "f", "cs", "Czech", "cs-dita", 32000, ("stretch", "f0"),
              218.0, "festvox-czech-dita"),
    VoiceInfo("festival", "czech_machac", "festival-diphone", "m", "cs", "Czech", "cs-machac", 32000,
              ("stretch", "f0"), 75.0, "festvox-czech-machac"),
    VoiceInfo("festival", "suo_fi_lj_diphone", "festival-diphone", "f", "fi", "Finnish", "fi-lj", 22050,
              ("stretch", "f0"), 151.0, "festvox-suopuhe-lj"),
    VoiceInfo("festival", "hy_fi_mv_diphone", "festival-diphone", "m", "fi", "Finnish", "fi-mv", 22050,
              ("stretch", "f0"), 83.0, "festvox-suopuhe-mv"),
    VoiceInfo("festival", "upc_ca_ona_hts", "festival-hts", "f", "ca", "Catalan (central)", "ca-ona", 16000, (),
              168.0, "HMM statistical-parametric (festvox-ca-ona-hts); Festival ignores Duration_Stretch and F0 "
              "for it"),
    VoiceInfo("festival", "msu_ru_nsh_clunits", "festival-clunits", "m", "ru", "Russian", "ru-nsh", 16000, (),
              134.0, "unit selection from real recordings (festvox-ru); its prosody is the units' own"),
    VoiceInfo("flite", "awb", "flite-cg", "m", "en", "Scottish", "awb", 16000, ("stretch", "f0"), 130.0,
              "clustergen statistical-parametric (flite 2.x cmu_us_awb)"),
    VoiceInfo("flite", "rms", "flite-cg", "m", "en", "US", "rms", 16000, ("stretch",), 101.0,
              "clustergen statistical-parametric; flite ignores int_f0_target_mean and f0_shift for it"),
    VoiceInfo("flite", "kal16", "flite-diphone", "m", "en", "US", "kal", 16000, ("stretch", "f0"), 89.0,
              "same speaker as Festival kal_diphone (not a different speaker)"),
    VoiceInfo("flite", "kal", "flite-diphone", "m", "en", "US", "kal", 8000, ("stretch", "f0"), 89.0,
              "same speaker as Festival kal_diphone; 8 kHz (telephone band), resampled to 16 kHz"),
)}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(v.family for v in VOICES.values()))


def voice_info(key: str) -> VoiceInfo:
    """The registry entry of "engine:voice" (an espeak "+variant" suffix is allowed)."""
    check_voice(key)
    base = key.split("+")[0]
    if base not in VOICES:
        raise KeyError(f"unknown voice {key!r}; registered: {sorted(VOICES)}")
    return VOICES[base]


ESPEAK_RATE = 175  # words per minute at stretch 1


def synthesize(key: str, texts: list[str], stretch: float = 1.0, f0_scale: float = 1.0) -> list[Utterance]:
    """Any registered voice with one interface: `stretch` > 1 is slower, `f0_scale` multiplies the pitch.
    A control the voice does not have (VoiceInfo.controls) must be left at 1.0."""
    info = voice_info(key)
    for control, value in (("stretch", stretch), ("f0", f0_scale)):
        if value != 1.0 and control not in info.controls:
            raise ValueError(f"{info.key} cannot vary {control} (controls: {info.controls})")
    voice = key.split(":", 1)[1]
    if info.engine == "espeak":
        es = Espeak.get()
        pitch = int(np.clip(round(50 + 50 * np.log2(f0_scale)), 0, 100))  # espeak's pitch scale is 0–100, ~1 octave
        return [es.synth(t, voice, rate=int(round(ESPEAK_RATE / stretch)), pitch=pitch) for t in texts]
    if info.engine == "flite":
        f0 = None if f0_scale == 1.0 else info.f0_hz * f0_scale
        return flite_synth([FliteRequest(t, stretch, f0) for t in texts], voice)
    spec = FESTIVAL_VOICES[voice]
    if spec.f0_lr:
        return festival_synth([FestivalRequest(t, stretch, 105.0 * f0_scale, 14.0 * f0_scale) for t in texts], voice)
    return festival_synth([FestivalRequest(t, stretch, f0_scale=f0_scale) for t in texts], voice)

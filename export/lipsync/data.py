"""Build the lip-sync dataset: synthesized speech + exact phonemes + coarticulated targets.

    python -m export.lipsync.data --out DIR --utterances N [--seed 0] [--jobs 2]

writes DIR/{train,val,heldout}/NNNNNN.npz and DIR/index.json in the format of
docs/lipsync.md. train and val share voices and sentence material; heldout uses
espeak voices and sentences never used for train/val (`HELDOUT_*` below and
`sentences.py`). What is said, by which voice and with which speaker style is a
function of (seed, utterance index), and each chunk of utterances is synthesized
in a fresh process, so the dataset is the same, bit for bit, whatever --jobs is.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from export.lipsync import coarticulation as co
from export.lipsync import phonemes as ph
from export.lipsync import registry, sentences, speaker, synth, voices, voicesets

# espeak-ng base voices (names as libespeak-ng resolves them: "en" is the British voice gmw/en).
TRAIN_BASES = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd")
HELDOUT_BASES = ("en-029", "en-us-nyc")
# Variants heard only in held-out evaluation; every other installed variant is for training.
HELDOUT_VARIANTS = ("Andy", "Annie", "f4", "m6", "klatt3", "steph2", "iven3", "john", "linda", "norbert",
                    "quincy", "edward2")
# Share of train/val espeak utterances spoken by a generated variant (export.lipsync.voices) instead of an
# installed one. Held-out speech never uses one. Off by default: at 0.5 (16 epochs, 2026-11-28) held-out jaw r
# stayed where it was (0.816 vs 0.820 pooled) and stage B's student drifted further from its teacher on blinks,
# so the shipped models come from the installed voices only (docs/lipsync.md, Voices).
GENERATED_SHARE = 0.0
# Real human speech (export.lipsync.realspeech, forced-aligned): a share of train/val utterances are the training
# prompts of the trained real speakers, most of them re-spoken by another voice (export.lipsync.speaker, WORLD).
# The real speakers held out for evaluation, and each trained speaker's held-out prompts, never come here.
REAL_SHARE = 0.25  # 0.15 until 2026-11-29 (session 7): real speech is where the model fails most
REAL_CHANGED = 0.7  # of those, the share whose speaker is changed (pitch, vocal tract length, rate)
# Share of synthetic train/val utterances re-spoken by a WORLD speaker change: the synthesizers' voices are few,
# and mostly male.
WORLD_SHARE = 0.15
SPLITS = ("train", "val", "heldout")
CHUNK = 16  # utterances per worker task: one fresh process, and one Festival run for a Festival chunk


@dataclass
class Spec:
    index: int
    split: str
    engine: str  # "espeak" | "festival"
    voice: str
    text: str
    rate: int = 175  # espeak: words per minute
    pitch: int = 50  # espeak: 0–100
    pitch_range: int = 50  # espeak: 0–100
    stretch: float = 1.1  # festival: Duration_Stretch
    f0_scale: float = 1.0  # festival voices other than kal (UniSyn diphones): F0 targets scaled
    f0_mean: float = 105.0  # festival: Hz
    f0_std: float = 14.0
    variant_text: str = ""  # espeak: a generated variant file, for `voice` = base+gen<index>
    source: str = ""  # real: the file (under the dataset's sources/) holding the aligned recording
    change: bool = False  # re-spoken by a random WORLD speaker change (export.lipsync.speaker), drawn per utterance

    @property
    def file(self) -> str:
        return f"{self.split}/{self.index:06d}.npz"


def train_variants() -> list[str]:
    return [v for v in synth.espeak_variants() if v not in HELDOUT_VARIANTS]


def _rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, stream])


def split_counts(n: int, val_frac: float, heldout_frac: float) -> dict[str, int]:
    n_val = max(1, round(n * val_frac)) if n >= 3 else 0
    n_held = max(1, round(n * heldout_frac)) if n >= 3 else 0
    return {"train": n - n_val - n_held, "val": n_val, "heldout": n_held}


def plan(n: int, seed: int, festival_frac: float, val_frac: float, heldout_frac: float,
         use_festival: bool, generated_share: float = GENERATED_SHARE, real_sources: list[tuple[str, str]] = (),
         real_share: float = REAL_SHARE, world_share: float = WORLD_SHARE) -> list[Spec]:
    """What each utterance is: split, engine, voice, text, style. `real_sources`: (file, voice) of the real
    training recordings; with none, the plan is the synthetic one of before (the real and WORLD draws have
    random streams of their own, so adding them leaves every other utterance's draw as it was)."""
    counts = split_counts(n, val_frac, heldout_frac)
    splits = [s for s in SPLITS for _ in range(counts[s])]
    variants = train_variants()
    festival_voices = [v for v in voicesets.FESTIVAL_TRAINING if use_festival and synth.festival_available(v)]
    weights = np.array([voicesets.FESTIVAL_TRAINING[v] for v in festival_voices])
    festival_weights = weights / weights.sum() if len(weights) else weights
    specs = []
    for i, split in enumerate(splits):
        rng = _rng(seed, i, 0)
        text = sentences.sentence(rng, split)
        extra = _rng(seed, i, 3)  # real speech and speaker changes: their own stream
        if split != "heldout" and real_sources and extra.random() < real_share:
            file, voice = real_sources[int(extra.integers(len(real_sources)))]
            specs.append(Spec(i, split, "real", voice, "", source=file, change=bool(extra.random() < REAL_CHANGED)))
            continue
        change = split != "heldout" and extra.random() < world_share
        if split != "heldout" and use_festival and rng.random() < festival_frac:
            voice = festival_voices[int(extra.choice(len(festival_voices), p=festival_weights))]
            if voice == "kal_diphone":
                specs.append(Spec(i, split, "festival", voice, text, stretch=float(rng.uniform(0.85, 1.4)),
                                  f0_mean=float(rng.uniform(80, 140)), f0_std=float(rng.uniform(8, 25)),
                                  change=change))
                continue
            info = registry.voice_info(f"festival:{voice}")
            specs.append(Spec(i, split, "festival", voice, sentences.sentence_in(extra, info.language, split),
                              stretch=float(extra.uniform(0.85, 1.3)) if "stretch" in info.controls else 1.0,
                              f0_scale=float(extra.uniform(0.85, 1.2)) if "f0" in info.controls else 1.0,
                              change=change))
            continue
        if split == "heldout":
            base = str(rng.choice(TRAIN_BASES + HELDOUT_BASES))
            pool = list(HELDOUT_VARIANTS) + ([None] if base in HELDOUT_BASES else [])
        else:
            base, pool = str(rng.choice(TRAIN_BASES)), [None] + variants
        variant = pool[int(rng.integers(len(pool)))]
        generated = ""
        # Its own random stream: the rest of the plan (and every held-out utterance) is what it was without it.
        gen_rng = _rng(seed, i, 2)
        if split != "heldout" and gen_rng.random() < generated_share:
            variant = f"{synth.GENERATED_PREFIX}{i}"
            generated = voices.variant_text(gen_rng, variant)
        voice = base if variant is None else f"{base}+{variant}"
        specs.append(Spec(i, split, "espeak", voice, text, rate=int(rng.integers(130, 221)),
                          pitch=int(rng.integers(30, 71)), pitch_range=int(rng.integers(20, 81)),
                          variant_text=generated, change=change))
    return specs


def _check_tiling(u: synth.Utterance) -> None:
    ok = (u.starts[0] == 0 and np.all(u.ends > u.starts) and np.allclose(u.starts[1:], u.ends[:-1])
          and abs(u.ends[-1] - u.duration) < 1e-9)
    if not ok:
        raise RuntimeError(f"segments do not tile the audio for {u.voice} {u.text!r}")


def respeak(u: synth.Utterance, rng: np.random.Generator) -> tuple[synth.Utterance, speaker.SpeakerChange]:
    """The same utterance spoken by a random other voice (export.lipsync.speaker); the segments retimed."""
    change = speaker.draw(rng, speaker.median_f0(u.audio))
    audio = speaker.apply(u.audio, change)
    starts, ends = speaker.retime(u.starts, u.ends, len(audio), change.rate)
    return synth.Utterance(audio, list(u.phonemes), starts, ends, u.voice, u.text, list(u.raw)), change


def load_source(path: Path) -> synth.Utterance:
    """A real recording with its alignment, as `write_sources` stored it."""
    with np.load(path) as z:
        return synth.Utterance(z["audio"], [str(p) for p in z["phonemes"]], z["starts"].astype(np.float64),
                               z["ends"].astype(np.float64), str(z["voice"]), str(z["text"]))


def write_sources(out: Path, utterances: list[synth.Utterance]) -> list[tuple[str, str]]:
    """Store the real training recordings under out/sources/ for the worker processes; (file, voice) each."""
    (out / "sources").mkdir(parents=True, exist_ok=True)
    refs = []
    for k, u in enumerate(utterances):
        file = f"sources/{k:05d}.npz"
        np.savez(out / file, audio=u.audio, phonemes=np.array(u.phonemes, dtype="<U4"), starts=u.starts,
                 ends=u.ends, voice=np.array(u.voice), text=np.array(u.text))
        refs.append((file, u.voice))
    return refs


def _write(out: Path, spec: Spec, u: synth.Utterance, seed: int) -> dict:
    change = None
    if spec.change:
        u, change = respeak(u, _rng(seed, spec.index, 4))
    _check_tiling(u)
    n_frames = co.frame_count(len(u.audio))
    t = co.targets(u.phonemes, u.starts, u.ends, n_frames, _rng(seed, spec.index, 1))
    if not np.all(np.isfinite(t.articulation)):
        raise RuntimeError(f"non-finite targets for {spec}")
    np.savez(out / spec.file, audio=u.audio, phonemes=np.array(u.phonemes, dtype="<U4"),
             starts=u.starts.astype(np.float32), ends=u.ends.astype(np.float32), visemes=t.visemes,
             articulation=t.articulation, style=t.style)
    meta = {"id": f"{spec.index:06d}", "file": spec.file, "split": spec.split, "engine": spec.engine,
            "voice": u.voice, "text": spec.text, "duration": round(u.duration, 4), "frames": n_frames,
            "phonemes": len(u.phonemes)}
    if change is not None:
        meta["speaker_change"] = change.tag()
    if spec.engine == "real":
        meta.update(source=spec.source, text=u.text)
    elif spec.engine == "espeak":
        meta.update(rate=spec.rate, pitch=spec.pitch, pitch_range=spec.pitch_range)
        if spec.variant_text:
            meta["variant"] = spec.variant_text
    else:
        meta.update(stretch=round(spec.stretch, 3), f0_mean=round(spec.f0_mean, 1), f0_std=round(spec.f0_std, 1),
                    f0_scale=round(spec.f0_scale, 3))
    return meta


def run_chunk(args: tuple[str, int, list[dict]]) -> tuple[list[dict], dict[str, int]]:
    """Synthesize and write one chunk (one engine); returns its index entries and unknown symbols."""
    out_dir, seed, spec_dicts = args
    out, specs = Path(out_dir), [Spec(**d) for d in spec_dicts]
    before = Counter(ph.UNKNOWN)
    if specs[0].engine == "real":
        utts = [load_source(out / s.source) for s in specs]
    elif specs[0].engine == "festival":
        utts = synth.festival_synth([synth.FestivalRequest(s.text, s.stretch, s.f0_mean, s.f0_std, s.f0_scale)
                                     for s in specs], specs[0].voice)
    else:
        es = synth.Espeak.get()
        for s in specs:
            if s.variant_text:
                es.add_variant(s.voice.split("+")[1], s.variant_text)
        utts = [es.synth(s.text, s.voice, s.rate, s.pitch, s.pitch_range) for s in specs]
    metas = [_write(out, s, u, seed) for s, u in zip(specs, utts)]
    return metas, dict(Counter(ph.UNKNOWN) - before)


def _chunks(specs: list[Spec]) -> list[list[Spec]]:
    """Chunks of one engine (and, for Festival, one voice: one Festival process speaks with one voice)."""
    by_engine: dict[tuple[str, str], list[Spec]] = {}
    for s in specs:
        by_engine.setdefault((s.engine, s.voice if s.engine == "festival" else ""), []).append(s)
    chunks = [group[i:i + CHUNK] for group in by_engine.values() for i in range(0, len(group), CHUNK)]
    return sorted(chunks, key=lambda c: c[0].index)


def build(out: Path, n: int, seed: int = 0, jobs: int = 2, festival_frac: float = 0.2,
          val_frac: float = 0.05, heldout_frac: float = 0.1, progress: bool = True,
          generated_share: float = GENERATED_SHARE, real_utterances: list[synth.Utterance] = (),
          real_share: float = REAL_SHARE, world_share: float = WORLD_SHARE) -> dict:
    """Generate the dataset; returns the index (also written to out/index.json). `real_utterances`: the aligned
    real recordings that train/val may use (`real_share` of them; none: synthetic speech only)."""
    if not synth.espeak_available():
        raise RuntimeError(f"libespeak-ng is missing ({synth.ESPEAK_LIB}): apt-get install espeak-ng")
    use_festival = festival_frac > 0 and synth.festival_available()
    if festival_frac > 0 and not use_festival:
        print("festival/kal_diphone not installed: espeak-ng only (apt-get install festival festvox-kallpc16k)",
              file=sys.stderr)
    real_sources = write_sources(out, list(real_utterances)) if len(real_utterances) else []
    specs = plan(n, seed, festival_frac, val_frac, heldout_frac, use_festival, generated_share, real_sources,
                 real_share, world_share)
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    tasks = [(str(out), seed, [asdict(s) for s in c]) for c in _chunks(specs)]
    metas: list[dict] = []
    unknown: Counter[str] = Counter()
    start = time.perf_counter()
    bar = tqdm(total=len(specs), desc="lipsync data", unit="utt", disable=not progress)
    # Each chunk runs in a fresh process: libespeak-ng keeps internal state between
    # utterances (the same text comes out a few samples different after other speech),
    # so a fresh process per chunk is what makes the dataset independent of --jobs.
    # forkserver, not fork: the caller may hold threads (torch, tqdm) that a forked
    # child would inherit mid-lock; the preload keeps each fresh child cheap.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["export.lipsync.data"])
    with ctx.Pool(jobs, maxtasksperchild=1) as pool:
        try:
            for chunk_metas, chunk_unknown in pool.imap_unordered(run_chunk, tasks):
                metas += chunk_metas
                unknown.update(chunk_unknown)
                bar.update(len(chunk_metas))
        finally:
            bar.close()
    seconds = time.perf_counter() - start
    metas.sort(key=lambda m: m["id"])
    audio_s = sum(m["duration"] for m in metas)
    index = {
        "format": 1, "sample_rate": synth.SAMPLE_RATE, "hop_s": co.HOP_S, "seed": seed,
        "visemes": list(ph.VISEMES), "groups": list(ph.GROUPS), "viseme_group": list(ph.VISEME_GROUP_INDEX),
        "articulation": list(co.ARTICULATION), "style_keys": list(co.STYLE_KEYS), "arpabet": list(ph.ARPABET),
        "counts": {s: sum(m["split"] == s for m in metas) for s in SPLITS},
        "unknown_symbols": dict(unknown),
        "generation": {"seconds": round(seconds, 2), "jobs": jobs, "audio_seconds": round(audio_s, 1),
                       "utterances_per_s": round(len(metas) / seconds, 2)},
        "utterances": metas,
    }
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.lipsync.data", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--utterances", type=int, required=True, help="total over train, val and heldout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--festival-frac", type=float, default=0.2, help="share of train/val from Festival kal_diphone")
    ap.add_argument("--val-frac", type=float, default=0.05)
    ap.add_argument("--heldout-frac", type=float, default=0.1)
    ap.add_argument("--generated-share", type=float, default=GENERATED_SHARE,
                    help="share of train/val espeak utterances spoken by a generated voice variant (0: installed only)")
    a = ap.parse_args(argv)
    if not 0.0 <= a.generated_share <= 1.0:
        ap.error(f"--generated-share is a share of utterances, from 0 to 1 (got {a.generated_share})")
    index = build(a.out, a.utterances, a.seed, a.jobs, a.festival_frac, a.val_frac, a.heldout_frac,
                  generated_share=a.generated_share)
    g = index["generation"]
    rate = g["utterances_per_s"]
    print(f"{len(index['utterances'])} utterances ({index['counts']}), {g['audio_seconds']:.0f} s of audio "
          f"in {g['seconds']:.1f} s with {a.jobs} jobs: {rate:.1f} utterances/s, "
          f"{g['audio_seconds'] / g['seconds']:.0f}× real time; about {int(rate * 300)} utterances in 5 minutes")
    if index["unknown_symbols"]:
        print(f"unknown phoneme symbols (fallback used): {index['unknown_symbols']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

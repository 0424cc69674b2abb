"""Lip-sync training data: phoneme maps, exact timings, coarticulated targets, augmentation, the build command.

The lip model can only be as good as these targets: a phoneme symbol that maps
to the wrong mouth, a segment that drifts off the audio, or a closure that does
not close would be learnt faithfully. Speech comes from the real synthesizers
(libespeak-ng, Festival kal_diphone); tests that need one skip when it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.lipsync import augment as A
from export.lipsync import coarticulation as co
from export.lipsync import data, sentences, synth, voices
from export.lipsync import phonemes as ph

needs_espeak = pytest.mark.skipif(not synth.espeak_available(),
                                  reason=f"libespeak-ng is not installed ({synth.ESPEAK_LIB}; apt-get install espeak-ng)")
needs_festival = pytest.mark.skipif(not synth.festival_available(),
                                    reason="Festival kal_diphone is not installed (apt-get install festival festvox-kallpc16k)")
needs_words = pytest.mark.skipif(not sentences.WORD_LIST.exists(),
                                 reason=f"{sentences.WORD_LIST} is missing (apt-get install wamerican)")

# Sentences that between them exercise linking r and y-glides, syllabic l, diphthongs,
# flaps, glottal stops, r-coloured vowels, questions and exclamations.
TEST_SENTENCES = (
    "Bob bought a map.", "Who knew? Five sheep see it, and the idea is awful!",
    "Her father hires a tour guide for the little bottle of water.",
    "Judge the huge beige garage, then measure the vision of the world.",
    "The hour is near; the science of fire, yes, hurry, really early.",
)
VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc+f2", "en-gb-x-gbclan+klatt3")


def assert_tiles(u: synth.Utterance) -> None:
    assert u.starts[0] == 0.0
    np.testing.assert_allclose(u.starts[1:], u.ends[:-1], atol=0)
    assert np.all(u.ends > u.starts), "a segment with no duration"
    assert u.ends[-1] == pytest.approx(u.duration, abs=1e-9)
    assert u.audio.dtype == np.int16 and len(u.audio) > 0
    assert all(p in ph.ARPABET for p in u.phonemes)


# --------------------------------------------------------------------------- phoneme maps


def test_every_arpabet_phoneme_has_a_viseme_and_every_viseme_a_group():
    assert len(ph.ARPABET) == 40 and len(ph.VISEMES) == 15 and len(ph.GROUPS) == 6
    assert {ph.ARPABET_TO_VISEME[p] for p in ph.ARPABET} == set(ph.VISEMES)
    assert [ph.GROUPS[g] for g in ph.VISEME_GROUP_INDEX] == [ph.VISEME_TO_GROUP[v] for v in ph.VISEMES]
    from avatar_rt.motion.blendshapes import VISEME_NAMES
    assert ph.VISEMES == VISEME_NAMES  # one viseme order for the runtime and the data


def test_unknown_symbols_fall_back_and_are_counted_not_dropped():
    before = ph.UNKNOWN["t%%"]
    assert ph.espeak_to_arpabet("t%%") == ("T",)  # modifiers stripped until a known symbol is left
    assert ph.espeak_to_arpabet("%%") == ph.FALLBACK
    assert ph.UNKNOWN["t%%"] == before + 1
    assert ph.espeak_to_arpabet("'a") == ("AE",)  # a stress mark is not a new symbol


@needs_espeak
def test_phoneme_maps_cover_every_symbol_espeak_emits():
    es = synth.Espeak.get()
    unknown_before = sum(ph.UNKNOWN.values())
    seen = set()
    for i, text in enumerate(TEST_SENTENCES):
        for voice in VOICES[i % 3::3]:
            u = es.synth(text, voice, rate=300)
            seen.update(u.raw)
            assert_tiles(u)
    assert seen <= set(ph.ESPEAK_TO_ARPABET), f"unmapped espeak symbols: {seen - set(ph.ESPEAK_TO_ARPABET)}"
    assert sum(ph.UNKNOWN.values()) == unknown_before


@needs_festival
def test_festival_segments_map_and_tile_the_audio():
    utts = synth.festival_synth([synth.FestivalRequest(TEST_SENTENCES[1]),
                                 synth.FestivalRequest(TEST_SENTENCES[2], stretch=1.3, f0_mean=130)])
    for u in utts:
        assert set(u.raw) <= set(ph.FESTIVAL_TO_ARPABET)
        assert_tiles(u)
        assert u.phonemes[0] == ph.SIL and u.phonemes[-1] == ph.SIL
    assert utts[1].duration > 0.8 * utts[0].duration  # the slower request is not shorter per phoneme


# --------------------------------------------------------------------------- timings


@needs_espeak
def test_stop_closures_belong_to_the_stop():
    """espeak puts a stop's closure silence before its event; the segment must start at the silence."""
    u = synth.Espeak.get().synth("a map, a tap", "en-us")
    for i, p in enumerate(u.phonemes):
        if p in ("P", "T") and u.phonemes[i - 1] != ph.SIL:
            a, b = int(u.starts[i] * 16000), int(u.ends[i] * 16000)
            head = np.abs(u.audio[a + 16:a + 160].astype(int))  # the first ~10 ms of the segment
            assert head.max() < 300, f"{p} starts in sound, not in its closure"
            assert b - a > 320


# --------------------------------------------------------------------------- coarticulation


@needs_espeak
@pytest.mark.parametrize("seed", range(4))
def test_bob_bought_a_map_closes_on_bilabials_and_opens_on_vowels(seed):
    u = synth.Espeak.get().synth("Bob bought a map.", "en-us")
    n = co.frame_count(len(u.audio))
    t = co.targets(u.phonemes, u.starts, u.ends, n, np.random.default_rng(seed))
    art, centres = t.articulation, (np.arange(n) + 0.5) * co.HOP_S
    seg = np.searchsorted(u.ends, centres, side="right")
    press, jaw = art[:, co.PRESS], art[:, co.JAW]
    bilabials = [i for i, p in enumerate(u.phonemes) if p in ("P", "B", "M")]
    assert len(bilabials) >= 5  # b, b, b, m, p
    for i in bilabials:
        inside = seg == i
        assert inside.any() and np.all(press[inside] == 1.0), f"{u.phonemes[i]} at {u.starts[i]:.3f}s is not closed"
        assert np.all(jaw[inside] <= 0.15)
    # Every strong press peak lies in (or within the 20 ms lead-in of) a bilabial segment.
    near_bilabial = np.zeros(n, bool)
    for i in bilabials:
        near_bilabial |= (centres >= u.starts[i] - 0.02) & (centres < u.ends[i] + 0.01)
    assert not np.any((press > 0.9) & ~near_bilabial)
    # Jaw peaks (local maxima above 0.3) sit inside vowels, and each full vowel opens the jaw.
    peaks = [k for k in range(1, n - 1) if jaw[k] >= jaw[k - 1] and jaw[k] > jaw[k + 1] and jaw[k] > 0.3]
    assert peaks and all(u.phonemes[seg[k]] in ph.VOWELS for k in peaks)
    for i, p in enumerate(u.phonemes):
        if p in ("AA", "AO", "AE") and u.ends[i] - u.starts[i] > 0.08:
            assert jaw[seg == i].max() > 0.35
    # Labels are exact and the style is returned.
    assert [ph.VISEMES[v] for v in t.visemes[seg == bilabials[0]]] == ["PP"] * int((seg == bilabials[0]).sum())
    assert t.style.shape == (len(co.STYLE_KEYS),) and t.articulation.dtype == np.float32
    assert np.all((art >= 0) & (art <= 1))


def test_viseme_targets_follow_their_meaning():
    """Long isolated phonemes reach shapes that match avatar_rt/motion/params.py."""
    mean_style = np.array([np.mean(r) for r in co.STYLE_RANGES.values()])

    def steady(p):
        t = co.targets(["sil", p, "sil"], [0.0, 0.2, 0.6], [0.2, 0.6, 0.8], 80, np.random.default_rng(0), mean_style)
        return dict(zip(co.ARTICULATION, t.articulation[40]))

    aa, uw, iy, pp, ff = steady("AA"), steady("UW"), steady("IY"), steady("P"), steady("F")
    assert aa["jaw_open"] > 0.65 and uw["lip_round"] > 0.75 and iy["lip_spread"] > 0.7
    assert pp["lip_press"] == 1.0 and pp["jaw_open"] < 0.15
    assert ff["teeth_show"] > 0.4 and ff["upper_lip_raise"] > 0.15
    assert aa["lip_round"] < 0.1 and uw["jaw_open"] < 0.3


# --------------------------------------------------------------------------- voices


def test_reserved_evaluation_voices_are_refused():
    for name in ("cmu_us_slt_arctic_hts", "us_slt_hts", "kdl_diphone", "voice_kdl_diphone", "SLT"):
        with pytest.raises(synth.ReservedVoiceError):
            synth.check_voice(name)
        with pytest.raises(synth.ReservedVoiceError):
            synth.festival_synth([synth.FestivalRequest("hello")], voice=name)
    with pytest.raises(ValueError):
        synth.festival_synth([synth.FestivalRequest("hello")], voice="rab_diphone")  # not a training voice
    synth.check_voice("kal_diphone")
    synth.check_voice("en-us+m3")


@needs_espeak
def test_reserved_names_are_refused_by_espeak_too():
    with pytest.raises(synth.ReservedVoiceError):
        synth.Espeak.get().synth("hello", "kdl")


def test_heldout_voices_and_sentences_never_meet_training():
    assert not set(data.HELDOUT_VARIANTS) & set(data.train_variants())
    assert not set(data.HELDOUT_BASES) & set(data.TRAIN_BASES)
    assert not set(sentences.TEMPLATES["train"]) & set(sentences.TEMPLATES["heldout"])
    assert not set(sentences.PHRASES["train"]) & set(sentences.PHRASES["heldout"])


def _median_f0(audio: np.ndarray, rate: int = synth.SAMPLE_RATE) -> float:
    """Median pitch (Hz) of the loud 50 ms frames: YIN's first dip of the cumulative-mean-normalised
    difference below 0.2, over 60–400 Hz."""
    x = audio.astype(np.float64)
    n, lo, hi = int(0.05 * rate), rate // 400, rate // 60
    loud = np.percentile(np.abs(x), 90) / 3
    f0 = []
    for a in range(0, len(x) - n - hi, n):
        frame = x[a:a + n + hi]
        if np.sqrt(np.mean(frame[:n] ** 2)) < loud:
            continue
        d = np.array([np.sum((frame[:n] - frame[tau:tau + n]) ** 2) for tau in range(1, hi + 1)])
        cmnd = d * np.arange(1, hi + 1) / np.maximum(np.cumsum(d), 1e-9)
        dips = np.nonzero(cmnd[lo - 1:] < 0.2)[0]
        if len(dips):
            tau = lo + int(dips[0])
            f0.append(rate / tau)
    return float(np.median(f0))


@needs_espeak
def test_generated_variants_speak_in_their_own_voice():
    es = synth.Espeak.get()
    es.add_variant("gen900001", "name low\nlanguage variant\npitch 85 100\n")
    es.add_variant("gen900002", "name high\nlanguage variant\npitch 220 260\nformant 1 125 100 100\n")
    text = "We were away all day, early in the year."
    low, high = (es.synth(text, f"en-us+gen90000{i}", pitch=50, pitch_range=10) for i in (1, 2))
    assert_tiles(low)
    assert_tiles(high)
    assert low.phonemes == high.phonemes  # the same words, only the voice differs
    assert _median_f0(high.audio) > 2 * _median_f0(low.audio)
    # The variants live in this process's private data home, never in the installed espeak-ng-data.
    assert not (Path(synth.ESPEAK_DATA) / "voices" / "!v" / "gen900001").exists()
    with pytest.raises(ValueError, match="gen<digits>"):
        es.add_variant("../../evil", "name x\n")
    # A randomly drawn variant is a voice espeak-ng accepts, speaking the same phonemes.
    es.add_variant("gen900003", voices.variant_text(np.random.default_rng(3), "gen900003"))
    assert es.synth(text, "en-us+gen900003").phonemes == es.synth(text, "en-us").phonemes


def test_generated_voices_are_for_training_only_and_leave_the_heldout_set_as_it_was():
    with_gen = data.plan(400, 0, 0.2, 0.05, 0.1, True, generated_share=0.5)
    without = data.plan(400, 0, 0.2, 0.05, 0.1, True, generated_share=0.0)
    held = [s for s in with_gen if s.split == "heldout"]
    assert held == [s for s in without if s.split == "heldout"] and not any(s.variant_text for s in held)
    espeak_train = [s for s in with_gen if s.split != "heldout" and s.engine == "espeak"]
    generated = [s for s in espeak_train if s.variant_text]
    assert 0.35 < len(generated) / len(espeak_train) < 0.65
    for s in generated:
        assert s.voice.endswith(f"+{synth.GENERATED_PREFIX}{s.index}") and "klatt 3" not in s.variant_text
    # Everything but the voice is what the plan without generated voices says.
    same = {s.index: s for s in without}
    assert all(s.text == same[s.index].text and s.rate == same[s.index].rate for s in with_gen)


@needs_words
def test_sentences_are_deterministic_and_word_sets_disjoint():
    assert sentences.sentences(20, seed=3) == sentences.sentences(20, seed=3)
    assert sentences.sentences(20, seed=3) != sentences.sentences(20, seed=4)
    train, held = set(sentences.words("train")), set(sentences.words("heldout"))
    assert len(train) > 20000 and len(held) > 3000 and not train & held
    # Held-out sentences use held-out words, apart from the words of the held-out phrases and frames.
    own = {w for line in sentences.PHRASES["heldout"] + sentences.TEMPLATES["heldout"]
           for w in line.lower().replace("{}", " ").replace(",", " ").strip(".?!").split()}
    for s in sentences.sentences(50, seed=1, split="heldout"):
        content = {w.strip(".,?!").lower() for w in s.split()} - set(sentences.FUNCTION_WORDS) - own
        assert not content & train, s


# --------------------------------------------------------------------------- augmentation


def speechlike(n=16000, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > 0) * 0.4
    return (env * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * rng.standard_normal())) * 32767).astype(np.int16)


@pytest.mark.parametrize("fn", [
    lambda x, r: A.add_noise(x, r, 10, "pink"), lambda x, r: A.add_noise(x, r, 0, "brown"),
    lambda x, r: A.mic_floor(x, r, -60), lambda x, r: A.add_babble(x, [speechlike(5000, 2)], r, 15),
    lambda x, r: A.reverb(x, r, 0.5, 0.5), lambda x, r: A.gain(x, 12), lambda x, r: A.band_limit(x, 300, 3400),
    lambda x, r: A.band_limit(x, None, 4000), lambda x, r: A.resample_roundtrip(x, 8000),
    lambda x, r: A.resample_roundtrip(x, 44100), lambda x, r: A.mulaw_roundtrip(x),
    lambda x, r: A.opus_roundtrip(x, 6000), lambda x, r: A.hard_clip(x, 12),
    lambda x, r: A.augment(x, r, [speechlike(3000, 3)], p=1.0),
])
@pytest.mark.parametrize("n", [0, 1, 37, 16000])
def test_augmentations_keep_length_dtype_and_finite_values(fn, n):
    x = speechlike(16000)[:n]
    y = fn(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.int16


def test_augment_is_deterministic_and_keeps_the_speech_in_place():
    x = speechlike(16000)
    for seed in range(6):
        a, b = A.augment(x, np.random.default_rng(seed)), A.augment(x, np.random.default_rng(seed))
        np.testing.assert_array_equal(a, b)
    # The codec and filters remove their delays: the envelope stays aligned with the targets.
    for y in (A.opus_roundtrip(x, 16000), A.band_limit(x, 300, 3400), A.reverb(x, np.random.default_rng(0), 0.3, 0.3)):
        xf, yf = x.astype(float), y.astype(float)
        lags = range(-80, 81)
        best = max(lags, key=lambda lag: float(np.dot(xf[200:-200], np.roll(yf, -lag)[200:-200])))
        assert abs(best) <= 2


def test_pad_silence_pads_targets_by_whole_hops():
    x, v, art = speechlike(1600), np.ones(10, np.int8), np.full((10, 7), 0.5, np.float32)
    a, v2, art2 = A.pad_silence(x, v, art, np.random.default_rng(1))
    lead = int(np.argmax(v2 == 1))
    assert len(a) == 160 * len(v2) and art2.shape == (len(v2), 7)
    np.testing.assert_array_equal(a[160 * lead:160 * lead + 1600], x)
    assert np.all(v2[:lead] == 0) and np.all(art2[:lead] == 0)


# --------------------------------------------------------------------------- the build command


@needs_espeak
@needs_words
def test_data_command_writes_a_readable_dataset(tmp_path, capsys):
    assert data.main(["--out", str(tmp_path), "--utterances", "6", "--seed", "5", "--jobs", "2"]) == 0
    assert "utterances/s" in capsys.readouterr().out
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["visemes"] == list(ph.VISEMES) and index["articulation"] == list(co.ARTICULATION)
    assert index["counts"] == {"train": 4, "val": 1, "heldout": 1} and not index["unknown_symbols"]
    for m in index["utterances"]:
        z = np.load(tmp_path / m["file"])
        assert set(z.files) == {"audio", "phonemes", "starts", "ends", "visemes", "articulation", "style"}
        f = len(z["audio"]) // 160
        assert z["audio"].dtype == np.int16 and z["phonemes"].dtype == np.dtype("<U4")
        assert z["starts"].dtype == z["ends"].dtype == np.float32
        assert z["visemes"].shape == (f,) and z["visemes"].dtype == np.int8 and z["visemes"].max() < 15
        assert z["articulation"].shape == (f, 7) and z["articulation"].dtype == np.float32
        assert np.all((z["articulation"] >= 0) & (z["articulation"] <= 1))
        assert z["style"].shape == (len(co.STYLE_KEYS),) and m["frames"] == f
        assert z["starts"][0] == 0 and z["ends"][-1] == pytest.approx(len(z["audio"]) / 16000, abs=1e-4)
        assert m["duration"] == pytest.approx(len(z["audio"]) / 16000, abs=1e-3)
        if m["split"] == "heldout":
            base, _, variant = m["voice"].removeprefix("espeak:").partition("+")
            assert base in data.HELDOUT_BASES or variant in data.HELDOUT_VARIANTS
        else:
            assert m["voice"] == "festival:kal_diphone" or "+" not in m["voice"] or \
                m["voice"].partition("+")[2] not in data.HELDOUT_VARIANTS
    # The same seed gives the same data, whatever the number of jobs.
    again = tmp_path / "again"
    data.build(again, 6, seed=5, jobs=1, progress=False)
    for m in index["utterances"]:
        a, b = np.load(tmp_path / m["file"]), np.load(again / m["file"])
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{m['file']} {key}")

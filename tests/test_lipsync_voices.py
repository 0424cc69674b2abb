"""The training voices of the lip-sync data (export.lipsync.registry.VOICES): flite, Festival in six languages, espeak-ng.

Each voice speaks a short sentence of its language with bilabials in known places; its segments must tile
the audio, hold the expected p/b/m, and each bilabial after a vowel must start in a closure (the
1–5 kHz energy drops against the vowel before it). The reserved evaluation voices (flite `slt`,
festvox-us-slt-hts, festvox-kdlpc16k) are refused everywhere. A voice whose Debian package is missing is
skipped with the package to install.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from export.lipsync import phonemes as ph
from export.lipsync import flite, registry, sentences, sentences_intl, synth

SR = synth.SAMPLE_RATE
# The p/b/m of sentences.probe_sentence(language), in order.
EXPECTED_BILABIALS = {
    "en": ["B", "B", "M", "M", "P"],  # Bob made a map.
    "it": ["P", "P", "M", "M", "B"],  # Papà mangia una mela buona.
    "ca": ["P", "M", "P", "M", "B"],  # El pare menja una poma bona.
    "cs": ["M", "M", "P", "B"],  # Maminka peče buchty.
    "fi": ["P", "P", "M", "M", "M"],  # Pappa ja mummo ostavat omenan.
    "ru": ["M", "M", "P", "P", "P", "M"],  # Мама и папа пили молоко.
}
# Every registered voice but the espeak-ng bases (one of them is enough here; test_lipsync_data covers espeak).
TESTED = [k for k, v in registry.VOICES.items() if v.engine != "espeak"] + ["espeak:en-us"]


def _skip_unless_available(info: registry.VoiceInfo) -> None:
    if info.available():
        return
    package = {"espeak": "espeak-ng", "flite": "flite"}.get(info.engine)
    if package is None:
        package = f"festival {synth.FESTIVAL_VOICES[info.voice].package}"
    pytest.skip(f"{info.key} is not installed (apt-get install {package})")


_BAND = butter(4, [1000, 5000], btype="band", fs=SR, output="sos")


def _band_db(audio: np.ndarray, win: int = int(0.010 * SR)) -> np.ndarray:
    """A centred 10 ms moving level (dB) of the 1–5 kHz band: high while the mouth is open, low in a closure
    (a nasal murmur or a voice bar radiates little there)."""
    x = sosfiltfilt(_BAND, audio.astype(np.float64))
    c = np.cumsum(np.concatenate([np.zeros(win // 2 + 1), x ** 2, np.zeros(win)]))
    return 10 * np.log10((c[win:win + len(x)] - c[:len(x)]) / win + 1.0)


def _assert_tiles(u: synth.Utterance) -> None:
    assert u.audio.dtype == np.int16 and u.audio.ndim == 1 and len(u.audio) > SR // 4
    assert len(u.phonemes) == len(u.starts) == len(u.ends)
    assert u.starts[0] == 0.0
    np.testing.assert_allclose(u.starts[1:], u.ends[:-1])
    assert np.all(u.ends > u.starts)
    assert abs(u.ends[-1] - u.duration) < 1e-9
    assert set(u.phonemes) <= set(ph.ARPABET)
    assert u.phonemes[0] == ph.SIL and u.phonemes[-1] == ph.SIL
    assert np.abs(u.audio.astype(np.int32)).max() > 3000  # speech, not near-silence


@pytest.mark.parametrize("key", TESTED)
def test_voice_speaks_bilabials_with_closures(key):
    info = registry.VOICES[key]
    _skip_unless_available(info)
    unknown_before = sum(ph.UNKNOWN.values())
    (u,) = registry.synthesize(key, [sentences.probe_sentence(info.language)])
    _assert_tiles(u)
    assert sum(ph.UNKNOWN.values()) == unknown_before, f"unmapped symbols in {u.raw}"
    assert [p for p in u.phonemes if p in ("P", "B", "M")] == EXPECTED_BILABIALS[info.language], u.phonemes
    level = _band_db(u.audio)
    checked = 0
    for i, p in enumerate(u.phonemes):
        if p not in ("P", "B", "M") or u.phonemes[i - 1] not in ph.VOWELS:
            continue
        a, s, e = (int(round(t * SR)) for t in (u.starts[i - 1], u.starts[i], u.ends[i]))
        vowel = np.median(level[a:s])
        onset = level[s:s + min(max((e - s) // 2, 1), int(0.05 * SR))].min()  # its first half, ≤ 50 ms
        need = 2.0 if p == "M" else 15.0  # a nasal murmur keeps some energy; a stop closure is near silence
        assert vowel - onset >= need, f"{p} at {u.starts[i]:.3f}s: only {vowel - onset:.1f} dB below the vowel"
        checked += 1
    assert checked >= 2


@pytest.mark.parametrize("key", [k for k, v in registry.VOICES.items() if v.engine != "espeak"])
def test_voice_varies_rate_and_pitch_and_keeps_tiling(key):
    info = registry.VOICES[key]
    _skip_unless_available(info)
    text = sentences.language_sentences(info.language, 1, seed=11)[0]
    stretch = 1.3 if "stretch" in info.controls else 1.0
    f0 = 1.25 if "f0" in info.controls else 1.0
    plain, varied = registry.synthesize(key, [text])[0], registry.synthesize(key, [text], stretch, f0)[0]
    for u in (plain, varied):
        _assert_tiles(u)
    assert [p for p in plain.phonemes if p != ph.SIL] == [p for p in varied.phonemes if p != ph.SIL]
    if stretch != 1.0:
        assert varied.duration > 1.15 * plain.duration
    for control in {"stretch", "f0"} - set(info.controls):
        with pytest.raises(ValueError):
            registry.synthesize(key, [text], **({"stretch": 1.2} if control == "stretch" else {"f0_scale": 1.2}))


def test_flite_batch_and_requests():
    if not flite.flite_available():
        pytest.skip("flite is not installed (apt-get install flite)")
    utts = flite.flite_synth(["Maybe Bobby made a map.", flite.FliteRequest("Pop the big balloon.", stretch=1.4)],
                             voice="kal16")
    assert [u.voice for u in utts] == ["flite:kal16"] * 2
    for u in utts:
        _assert_tiles(u)
    assert utts[0].raw[0] == "pau" and "m" in utts[0].raw
    with pytest.raises(ValueError):
        flite.flite_synth(["hello"], voice="awb_time")  # installed, but a talking clock, not a training voice


@pytest.mark.parametrize("call", [
    lambda: flite.flite_synth(["hello"], voice="slt"),
    lambda: flite.flite_synth(["hello"], voice="cmu_us_slt"),
    lambda: registry.synthesize("flite:slt", ["hello"]),
    lambda: synth.festival_synth([synth.FestivalRequest("hello")], voice="cmu_us_slt_arctic_hts"),
    lambda: synth.festival_synth([synth.FestivalRequest("hello")], voice="kdl_diphone"),
    lambda: registry.synthesize("festival:kdl_diphone", ["hello"]),
    lambda: registry.voice_info("festival:cmu_us_slt_arctic_hts"),
])
def test_reserved_voices_are_refused(call):
    with pytest.raises(synth.ReservedVoiceError):
        call()


def test_flite_never_loads_slt():
    assert "slt" not in flite.FLITE_VOICES
    if flite.Flite._instance is not None:
        assert not any("slt" in name for name in flite.Flite._instance._voices)


def test_registry():
    allowed = {"espeak", "festival-diphone", "festival-hts", "festival-clunits", "flite-cg", "flite-diphone"}
    assert set(registry.FAMILIES) == allowed
    for key, v in registry.VOICES.items():
        assert key == v.key and v.gender in ("m", "f") and v.language in sentences.LANGUAGES
        assert not any(p in key.lower() for p in synth.RESERVED_VOICE_PATTERNS)
        assert set(v.controls) <= {"stretch", "f0"}
        if v.engine == "festival":
            assert v.voice in synth.FESTIVAL_VOICES and synth.FESTIVAL_VOICES[v.voice].language == v.language
    kal = registry.VOICES["festival:kal_diphone"].speaker
    assert registry.VOICES["flite:kal16"].speaker == registry.VOICES["flite:kal"].speaker == kal
    assert "same speaker" in registry.VOICES["flite:kal16"].note
    assert sum(v.gender == "f" for v in registry.VOICES.values()) >= 4
    assert registry.voice_info("espeak:en-us+f3") is registry.VOICES["espeak:en-us"]
    with pytest.raises(KeyError):
        registry.voice_info("festival:rab_diphone")


@pytest.mark.parametrize("language", [lang for lang in sentences.LANGUAGES if lang != "en"])
def test_sentences_of_other_languages(language):
    train = set(sentences.language_sentences(language, 600, seed=0, split="train"))
    held = set(sentences.language_sentences(language, 200, seed=0, split="heldout"))
    assert len(train) >= 60 and len(held) >= 20
    phrases = sentences_intl.PHRASES[language]
    assert not set(phrases["train"]) & set(phrases["heldout"])
    assert not set(sentences_intl.TEMPLATES[language]["train"]) & set(sentences_intl.TEMPLATES[language]["heldout"])
    assert not set(sentences.nouns(language, "train")) & set(sentences.nouns(language, "heldout"))
    assert sentences.language_sentences(language, 5, seed=3) == sentences.language_sentences(language, 5, seed=3)
    for spec in (s for s in synth.FESTIVAL_VOICES.values() if s.language == language):
        for text in train | held:
            text.encode(spec.encoding)  # every sentence reaches the voice's front end intact
    text = " ".join(phrases["train"]).lower()
    p, b, m, f, v, o, u, a, i = "pbmfvouai" if language != "ru" else "пбмфвоуаи"
    for letter in (p, m, o, u, a, i):
        assert text.count(letter) >= 15, letter
    assert text.count(b) >= 3 and text.count(f) + text.count(v) >= 10


@pytest.mark.parametrize("table", [ph.ITALIAN_TO_ARPABET, ph.CATALAN_TO_ARPABET, ph.CZECH_TO_ARPABET,
                                   ph.FINNISH_TO_ARPABET, ph.RUSSIAN_TO_ARPABET, ph.FESTIVAL_TO_ARPABET])
def test_phone_maps_keep_the_lip_shapes(table):
    for sym, arpa in table.items():
        assert arpa and all(p in ph.ARPABET for p in arpa), sym
    for bilabial in ("p", "b", "m"):
        if bilabial in table:
            assert table[bilabial] == (bilabial.upper(),)
    for labiodental in ("f", "v"):
        if labiodental in table:
            assert table[labiodental] == (labiodental.upper(),)
    groups = {sym: ph.VISEME_TO_GROUP[ph.ARPABET_TO_VISEME[arpa[0]]] for sym, arpa in table.items()}
    rounded_vowels = ("o", "u", "o1", "u1", "oo", "uu", "o:", "u:")
    if table is ph.FINNISH_TO_ARPABET:
        rounded_vowels += ("y", "7", "y:", "7:")  # front rounded vowels: the lips round
    for rounded in rounded_vowels:
        if rounded in table and table is not ph.FESTIVAL_TO_ARPABET:
            assert groups[rounded] == "rounded", rounded


def test_unknown_festival_symbol_is_counted():
    before = ph.UNKNOWN["q~"]
    assert ph.mapper(ph.CZECH_TO_ARPABET)("q~") == ph.FALLBACK
    assert ph.UNKNOWN["q~"] == before + 1


def test_festival_voice_that_fails_to_load_says_so(monkeypatch):
    if not synth.festival_available():
        pytest.skip("festival is not installed")
    broken = synth.FestivalVoice("no_such_voice", "en", "english/kal_diphone", "none", "utf-8",
                                 ph.FESTIVAL_TO_ARPABET, "unisyn")
    monkeypatch.setitem(synth.FESTIVAL_VOICES, "no_such_voice", broken)
    with pytest.raises(RuntimeError, match="failed to load"):
        synth.festival_synth([synth.FestivalRequest("hello")], voice="no_such_voice")
    assert "failed" in synth.probe_festival_voices(["no_such_voice"])["no_such_voice"]

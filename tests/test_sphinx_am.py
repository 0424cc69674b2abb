"""PocketSphinx's en-US acoustic model read with numpy (export/lipsync/sphinx_am.py): the files parse to the model's
shapes, the front end is PocketSphinx's own, and the CI phone posteriors hear the phones of a real held-out voice."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pocketsphinx", reason="the acoustic model ships in pocketsphinx==5.1.1 (the train extra)")
import pocketsphinx as ps  # noqa: E402

from export.lipsync import sphinx_am as sa  # noqa: E402
from avatar_rt.audio import sphinx_mfcc as mf  # noqa: E402
from tests.test_align import L0930, L0930_TEXT, needs_testdata  # noqa: E402


@pytest.fixture(scope="module")
def model() -> sa.SphinxModel:
    return sa.load_model()


@pytest.fixture(scope="module")
def l0930():
    from export.lipsync import align as al
    from export.lipsync.realspeech import _read_wav

    audio = _read_wav(L0930)
    return audio, al.align(audio, L0930_TEXT)


def test_model_files_have_the_ptm_shapes():
    d = sa.default_model_dir()
    means, var = sa.read_gauden(d / "means"), sa.read_gauden(d / "variances")
    assert means.shape == var.shape == (42, 3, 128, 13)
    # A few Gaussians are degenerate (variance 0 in 208 of 209 664 values): -varfloor 1e-4 floors them, as here.
    assert np.all(np.isfinite(means)) and np.all(var >= 0) and np.mean(var < sa.VAR_FLOOR) < 0.01
    mdef = sa.read_mdef(d / "mdef")
    assert len(mdef.phones) == 42 and {"P", "B", "M", "SIL", "AA"} <= set(mdef.phones)
    assert (mdef.n_ci_sen, mdef.n_sen) == (126, 5126)
    assert mdef.ci_senones.shape == (42, 3) and sorted(mdef.ci_senones.ravel()) == list(range(126))
    mixw = sa.read_sendump(d / "sendump")
    assert mixw.shape == (3, 128, 5126)
    # Dequantised, each senone's weights per stream sum to about 1 (they are floored -log values, so a bit less).
    w = np.exp(-(mixw[:, :, :126].astype(np.float64) * 1024) * np.log(sa.LOGBASE)).sum(axis=1)
    assert np.all((w > 0.85) & (w < 1.01))


@needs_testdata
def test_front_end_decodes_like_pocketsphinx(l0930):
    """PocketSphinx's phone loop on our cepstra (process_cep) segments the utterance as on its own (process_raw)."""
    audio, _ = l0930
    lm = str(sa.default_model_dir().parent / "en-us-phone.lm.bin")

    def decode(feed) -> list[tuple[str, int, int]]:
        d = ps.Decoder(allphone=lm, loglevel="FATAL", bestpath=False, samprate=16000)
        d.start_utt()
        feed(d)
        d.end_utt()
        return [(s.word, s.start_frame, s.end_frame) for s in d.seg()]

    own = decode(lambda d: d.process_raw(audio.astype(np.int16).tobytes(), full_utt=True))
    ours = decode(lambda d: d.process_cep(mf.CepstrumStream().push(audio).astype(np.float32).tobytes(),
                                          full_utt=True))
    assert [w for w, _, _ in ours] == [w for w, _, _ in own]
    n = own[-1][2] + 1
    a, b = np.zeros(n, "<U8"), np.zeros(n, "<U8")
    for arr, seg in ((a, own), (b, ours)):
        for w, s, e in seg:
            arr[s:e + 1] = w
    assert np.mean(a == b) > 0.97


@needs_testdata
def test_posteriors_hear_the_aligned_phones(model, l0930):
    """On a real held-out speaker, the frame argmax of the CI posteriors is the force-aligned phone far more often
    than chance (42 phones), and the streamed form gives the offline numbers."""
    audio, u = l0930
    post = sa.phone_posteriors(model, audio)
    assert post.shape[1] == 42 and np.allclose(post.sum(axis=1), 1.0, atol=1e-4)
    centres = (np.arange(len(post)) + 0.5) * 0.01
    lab = np.array([str(p) for p in u.phonemes])[np.minimum(np.searchsorted(u.ends, centres, side="right"),
                                                             len(u.phonemes) - 1)]
    names = np.array(model.phones)[post.argmax(axis=1)]
    names = np.where(np.char.startswith(names, "+") | (names == "SIL"), "sil", names)
    speech = lab != "sil"
    agree = float(np.mean(names[speech] == lab[speech]))
    # Measured 0.491 of the speech frames (frame-wise argmax, no HMM; a 42-phone guess of the commonest phone would
    # be right on ~10 %); the benchmark's real held-out speakers: 0.457 (LibriVox, 5 utts), 0.353 (Warzone narrator).
    assert agree > 0.40, agree
    st = sa.PhonePosteriorStream(model)
    rows = np.concatenate([st.push(audio[i:i + 333]) for i in range(0, len(audio), 333)])
    assert len(rows) == len(post) - mf.LOOKAHEAD_FRAMES
    assert np.abs(rows - post[:len(rows)]).max() < 1e-4

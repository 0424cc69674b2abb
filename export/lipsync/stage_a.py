"""Stage A of the lip sync: a small causal network, log-mel → articulation + viseme/phoneme posteriors.

    python -m export.lipsync.stage_a --data DIR --out engines/ [--epochs N] [--tiny] [--seed S]

trains on the dataset of `python -m export.lipsync.data` (docs/lipsync.md: one .npz
per utterance in DIR/{train,val}/), with audio augmentation applied on the fly,
and writes `OUT/lipsync_stage_a.onnx` plus its entry in `OUT/manifest.json`.
`--tiny` is the same pipeline on a handful of utterances for a few seconds (the tests).

## The network (≈ 1.25 M parameters at the default widths C = 256, H = 384, with the phones input)

    log-mel (80) ┬► causal conv k3 → C, ReLU
    phones (42) ─┘  (optional: `Config.phones`, on by default; docs/lipsync.md "The phone-posterior front end")
                 ─► + ReLU(causal conv k3, dilation 2)      (residual)
                 ─► + ReLU(causal conv k3, dilation 4)      (residual)
                 ─► GRU H (unidirectional)
                 ─► linear → 7 articulation (sigmoid) | 15 viseme logits | 40 phoneme logits

Every layer is causal: network output `t` depends on feature frames ≤ t only.
The right context is a fixed *delay*: output `t` is trained to predict the
targets of hop `t − RIGHT_CONTEXT` (8 hops = 80 ms), so the prediction for hop h
has seen the audio up to the end of hop h + 8 — the model looks 80 ms ahead and
never more. Convolutions see 14 frames of the past directly; the GRU carries the
rest.

## The streaming ONNX form (opset 17, hand-built from the trained weights)

A *stateful chunk model*: any number T ≥ 1 of new feature frames in, the same
T outputs out, and the state in and out:

| input | shape | |
|---|---|---|
| `mel` | (B, T, 80) | normalised log-mel frames (avatar_rt.audio.features), oldest first |
| `phones` | (B, T, 42) | (`Config.phones`) log phone posteriors, 5 hops late (avatar_rt.audio.phone_features) |
| `state_conv0` | (B, 80 + 42, 2) | the last 2 input frames (channels first; 80 without `phones`) |
| `state_conv1` | (B, C, 4) | the last 4 frames entering the dilation-2 conv |
| `state_conv2` | (B, C, 8) | the last 8 frames entering the dilation-4 conv |
| `state_gru` | (1, B, H) | GRU hidden state |

outputs `articulation` (B, T, 7) in [0, 1], `viseme_probs` (B, T, 15),
`phoneme_probs` (B, T, 40), for hops t − 8 of the T inputs t, and `next_state_*`
for every `state_*`. B, the symbolic `batch`, is the number of independent
streams in one call (sessions, batched by avatar_rt.motion.batching); each row
keeps its own state. The initial state is all zeros (the training's causal
zero padding), so one call on a whole utterance equals any sequence of calls on
its pieces. The metadata holds the right context, the feature configuration,
the global feature statistics that initialise the streaming normaliser, the
label orders and the validation / held-out metrics. The export checks the ONNX
graph, fed in uneven chunks, against torch on the whole sequence (≤ 1e-4).

## Training

Per step, 16 utterances are made into training examples on the fly: half get up
to 0.6 s of extra silence at either end (targets padded with rest), all go
through `export.lipsync.augment.augment` (p = 0.5: room, babble, noise, mic floor,
band limits, gain, clipping, resampling, codecs), then through the runtime's own
feature code with the training set's global statistics, and (with `phones`) through the phone-posterior front end
of avatar_rt.audio.phone_features (PocketSphinx's en-US model exported to OUT/phone_am.npz and read back; per-phone
log-posterior statistics from the clean training audio) (`--vtlp-p P`: a share P of
them with the mel axis stretched by 0.9–1.1 before normalisation, vocal tract length
perturbation; off by default and in the shipped model). One random crop of ≤ 4 s
each; loss 2·L1 + 8·weighted L2 (articulation) + 2·L1(articulation velocity) + 0.5·CE(visemes) +
0.3·CE(phonemes), outputs shifted by the right context against the targets.
AdamW 2e-3, linear warm-up then cosine; gradient clipping 1; seeded (numpy and
torch), so a run without --time-budget is reproducible.

The forward pass runs under bfloat16 autocast (`Config.bf16`; the losses, weights and
optimizer stay float32; on a trained model the bf16 forward matches float32 to r 0.99998,
mean |Δ| 7e-4), and the next batch is built in a thread while torch trains on this one
(`one_ahead`: the augmentation and features are numpy/scipy, which release the GIL).

Cost on the 2-core machine (2026-11-28, 40 steps on 400 utterances): augmentation +
features ≈ 0.3 s a batch of 16, forward + backward ≈ 0.3–0.45 s at 192/256. Steps a
second at 192/256: float32 built in turn 1.04, bf16 built in turn 1.07, float32 built
one ahead 1.76, bf16 one ahead 2.16; at 256/384 one ahead: float32 1.18, bf16 1.64
(1.64 over the whole 18-epoch run too: 77.7 min for 7 650 steps, evaluation included).
The tests' `--tiny` run: 20 steps on 6 utterances, one thread, ~2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

# The two cores are shared (a server, tests, data generation): OpenMP threads that spin while waiting
# turn contention into 10x slowdowns. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from tqdm import tqdm

from avatar_rt.audio import features
from avatar_rt.audio.features import HOP, N_MELS, FeatureStats
from avatar_rt.audio.phone_features import PhoneFeatures, PhoneStats, log_posteriors, phone_features
from avatar_rt.audio.phone_posteriors import AcousticModel, phone_posteriors
from avatar_rt.motion.lipsync import ARTICULATION  # the runtime's order, docs/lipsync.md
from export import manifest
from export.lipsync import coarticulation as co
from export.lipsync import phonemes as ph

NAME = "lipsync_stage_a"
VERSION = "1.0.0"
OPSET = 17
RIGHT_CONTEXT = 8  # hops (80 ms): output t predicts hop t − RIGHT_CONTEXT
# The batch dimension of every input and output (= sessions in one call, avatar_rt.motion.batching); the GRU's
# state keeps ONNX's layout (directions, batch, hidden), so its batch is axis 1. Graphs exported before issue 17
# had a literal 1 here; the runtime reads either.
BATCH = "batch"

VISEMES = ph.VISEMES  # 15 Oculus visemes
VISEME_GROUP_INDEX = np.array(ph.VISEME_GROUP_INDEX, dtype=np.int64)  # viseme → one of the 6 groups
PHONEMES = ph.ARPABET  # ARPAbet 39 + sil: the phoneme head's classes
_PHONEME_INDEX = {p: i for i, p in enumerate(PHONEMES)}
assert tuple(co.ARTICULATION) == ARTICULATION, "the dataset's articulation order must be the runtime's"
IGNORE = -100


# --------------------------------------------------------------------------- the network


class StageA(nn.Module):
    def __init__(self, channels: int = 256, hidden: int = 384, dilations: tuple[int, ...] = (2, 4),
                 kernel: int = 3, right_context: int = RIGHT_CONTEXT, n_phones: int = 0):
        super().__init__()
        self.kernel, self.dilations, self.right_context = kernel, tuple(dilations), right_context
        self.n_phones = n_phones  # width of the optional `phones` input (0: log-mel only)
        self.inp = nn.Conv1d(N_MELS + n_phones, channels, kernel)
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d) for d in self.dilations)
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(ARTICULATION) + len(VISEMES) + len(PHONEMES))

    def forward(self, mel: torch.Tensor, phones: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """mel (B, T, 80) [+ phones (B, T, n_phones), avatar_rt.audio.phone_features] → articulation (B, T, 7) in
        [0, 1], viseme logits (B, T, 15), phoneme logits (B, T, 40)."""
        x = (mel if phones is None else torch.cat([mel, phones], dim=-1)).transpose(1, 2)
        x = F.relu(self.inp(F.pad(x, (self.kernel - 1, 0))))
        for d, conv in zip(self.dilations, self.blocks):
            x = x + F.relu(conv(F.pad(x, ((self.kernel - 1) * d, 0))))
        y, _ = self.gru(x.transpose(1, 2))
        out = self.head(y)
        na, nv = len(ARTICULATION), len(VISEMES)
        return torch.sigmoid(out[..., :na]), out[..., na:na + nv], out[..., na + nv:]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- data


@dataclass
class Utterance:
    uid: str
    audio: np.ndarray  # int16, 16 kHz, clean
    articulation: np.ndarray  # (f, 7) float32
    visemes: np.ndarray  # (f,) int64
    phonemes: np.ndarray  # (f,) int64, IGNORE where unknown


@dataclass
class Sample:
    """One training example as the network sees it: features (frames, 80) and per-hop targets."""

    mel: np.ndarray  # (f + RIGHT_CONTEXT, 80) float32
    articulation: np.ndarray
    visemes: np.ndarray
    phonemes: np.ndarray
    phones: np.ndarray | None = None  # (f + RIGHT_CONTEXT, n_phones) float32: the `phones` input, if the model has it


def hop_phonemes(symbols: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_hops: int) -> np.ndarray:
    """Per-hop phoneme class: the segment containing the hop's centre time; `sil` between segments."""
    labels = np.full(n_hops, _PHONEME_INDEX[ph.SIL], dtype=np.int64)
    centres = (np.arange(n_hops) + 0.5) * HOP / features.SAMPLE_RATE
    for sym, s, e in zip(symbols, starts, ends):
        sym = str(sym)
        cls = _PHONEME_INDEX.get(sym if sym == ph.SIL else sym.upper().rstrip("012"), IGNORE)
        labels[(centres >= s) & (centres < e)] = cls
    return labels


def load_utterance(path: Path) -> Utterance:
    with np.load(path) as z:
        art = np.asarray(z["articulation"], dtype=np.float32)
        vis = np.asarray(z["visemes"], dtype=np.int64)
        n = min(len(art), len(vis))
        phon = hop_phonemes(z["phonemes"], z["starts"], z["ends"], n) if "phonemes" in z else np.full(n, IGNORE)
        return Utterance(path.stem, np.asarray(z["audio"], dtype=np.int16), art[:n], vis[:n], phon)


def load_split(data_dir: Path, split: str, limit: int | None = None) -> list[Utterance]:
    paths = sorted((data_dir / split).glob("*.npz"))
    if limit is not None:
        paths = paths[:limit]
    return [load_utterance(p) for p in paths]


def training_sample(u: Utterance, rng: np.random.Generator, stats: FeatureStats, others: list[np.ndarray],
                    p_augment: float = 0.5, max_pad_hops: int = 60, p_vtlp: float = 0.0,
                    front: PhoneFeatures | None = None) -> Sample:
    """One on-the-fly training example: half the time up to 0.6 s of extra leading/trailing silence (whole
    hops, targets padded with rest: closed mouth, `sil`), then export.lipsync.augment's random chain (room,
    babble, noise, microphone floor, band limits, gain, clipping, resampling, codecs; it never shifts time); the
    phone posteriors (with `front`) are computed from the augmented audio, as the runtime hears it."""
    from export.lipsync import augment  # noqa: PLC0415  (scipy, av: training only)

    lead, trail = (int(v) for v in rng.integers(0, max_pad_hops + 1, 2)) if rng.random() < 0.5 else (0, 0)
    audio = np.concatenate([np.zeros(lead * HOP, np.int16), u.audio, np.zeros(trail * HOP, np.int16)])
    audio = augment.augment(audio, rng, others, p=p_augment)
    sil = _PHONEME_INDEX[ph.SIL]
    warp = float(rng.uniform(*VTLP_RANGE)) if p_vtlp > 0 and rng.random() < p_vtlp else 1.0
    inputs = utterance_inputs(audio, stats, front, warp)
    return Sample(
        inputs["mel"],
        np.pad(u.articulation, ((lead, trail), (0, 0))),
        np.pad(u.visemes, (lead, trail), constant_values=ph.VISEME_INDEX["sil"]),
        np.pad(u.phonemes, (lead, trail), constant_values=sil),
        inputs.get("phones"),
    )


def compute_stats(utterances: list[Utterance], limit: int = 300) -> FeatureStats:
    """Global per-bin log-mel statistics of the clean training audio, over the frames the normaliser's gate admits."""
    frames = []
    for u in utterances[:limit]:
        raw, rms_db = features.raw_log_mel_offline(u.audio)
        frames.append(raw[rms_db > features.GATE_DBFS])
    frames = np.concatenate(frames) if frames else np.zeros((0, N_MELS))
    if len(frames) < 2:
        return FeatureStats.identity()
    return FeatureStats.from_frames(frames)


VTLP_RANGE = (0.9, 1.1)  # vocal tract length perturbation: mel axis stretched by this factor (training only)


def warp_mel(raw: np.ndarray, factor: float) -> np.ndarray:
    """Vocal tract length perturbation on log-mel frames: bin i takes the value at bin i / factor (linear
    interpolation, edges held). A longer or shorter vocal tract shifts the formants by about this factor, so
    the network meets more voices than the synthesizers have (the held-out voices are unseen ones)."""
    from export.lipsync import augment  # noqa: PLC0415  (scipy, av: training only)

    return augment.warp_bins(raw, factor)


def utterance_features(audio: np.ndarray, stats: FeatureStats, warp: float = 1.0) -> np.ndarray:
    """Features for training and evaluation: the audio plus RIGHT_CONTEXT hops of silence, so the
    last hops' predictions (made RIGHT_CONTEXT frames later) exist. `warp` ≠ 1 applies `warp_mel` to the raw
    log-mel before the (runtime's) streaming normalisation; at 1 this is exactly `features.log_mel`."""
    padded = _padded(audio)
    if warp == 1.0:
        return features.log_mel(padded, stats)
    raw, rms_db = features.raw_log_mel_offline(padded)
    return features.StreamingNormalizer(stats).apply(warp_mel(raw, warp), rms_db)


def _padded(audio: np.ndarray) -> np.ndarray:
    """The audio plus RIGHT_CONTEXT hops of silence, so the last hops' predictions (made RIGHT_CONTEXT frames
    later) exist."""
    return np.concatenate([np.asarray(audio, dtype=np.float32), np.zeros(RIGHT_CONTEXT * HOP, np.float32)])


def utterance_inputs(audio: np.ndarray, stats: FeatureStats, front: PhoneFeatures | None = None,
                     warp: float = 1.0) -> dict[str, np.ndarray]:
    """The model's inputs for a whole utterance: {"mel": utterance_features(...)} and, with `front`, "phones":
    avatar_rt.audio.phone_features of the same padded audio (one row per mel frame, the runtime's numbers)."""
    out = {"mel": utterance_features(audio, stats, warp)}
    if front is not None:
        out["phones"] = phone_features(front, _padded(audio))
    return out


def phone_stats(utterances: list[Utterance], model: AcousticModel, limit: int = 300) -> PhoneStats:
    """Per-phone mean and spread of the log posteriors on the clean training audio (all frames)."""
    rows = [log_posteriors(phone_posteriors(model, u.audio)) for u in utterances[:limit]]
    rows = [r for r in rows if len(r)]
    return PhoneStats.from_log_posteriors(np.concatenate(rows)) if rows else PhoneStats.identity(len(model.phones))


def make_batch(samples: list[Sample], crop: int, rng: np.random.Generator):
    """Random crops of `crop` feature frames; targets aligned to the
    outputs: output t ↔ hop t − RIGHT_CONTEXT, masked where that hop is outside the utterance."""
    R = RIGHT_CONTEXT
    B = len(samples)
    crop = min(crop, max(len(s.mel) for s in samples))  # no compute on padding when all are shorter
    mel = np.zeros((B, crop, N_MELS), np.float32)
    art = np.zeros((B, crop, len(ARTICULATION)), np.float32)
    vis = np.full((B, crop), IGNORE, np.int64)
    phon = np.full((B, crop), IGNORE, np.int64)
    mask = np.zeros((B, crop), np.float32)
    n_ph = samples[0].phones.shape[1] if samples[0].phones is not None else 0
    phones = np.zeros((B, crop, n_ph), np.float32)
    for b, u in enumerate(samples):
        feats, f = u.mel, len(u.visemes)
        t0 = int(rng.integers(0, max(1, len(feats) - crop + 1)))
        t1 = min(len(feats), t0 + crop)
        mel[b, : t1 - t0] = feats[t0:t1]
        if n_ph:
            phones[b, : t1 - t0] = u.phones[t0:t1]
        hops = np.arange(t0, t1) - R
        ok = (hops >= 0) & (hops < f)
        idx = np.nonzero(ok)[0]
        art[b, idx] = u.articulation[hops[ok]]
        vis[b, idx] = u.visemes[hops[ok]]
        phon[b, idx] = u.phonemes[hops[ok]]
        mask[b, idx] = 1.0
    return tuple(torch.from_numpy(a) for a in (mel, art, vis, phon, mask)) + ((torch.from_numpy(phones),) if n_ph
                                                                               else (None,))


# Per-output weight of the squared term, in ARTICULATION order: closures and rounding are
# what a viewer checks first (jaw, spread, round, upper raise, lower drop, press, teeth).
ART_WEIGHTS = torch.tensor([2.0, 1.0, 1.5, 1.0, 1.0, 2.5, 1.0])


def losses(model: StageA, batch, bf16: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    mel, art, vis, phon, mask, phones = batch
    # bf16 autocast runs the convolutions, the GRU and the head in bfloat16 (weights and optimizer stay float32);
    # the losses are taken in float32.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        p_art, l_vis, l_phon = model(mel, phones)
    p_art, l_vis, l_phon = p_art.float(), l_vis.float(), l_phon.float()
    m = mask.unsqueeze(-1)
    denom = mask.sum().clamp(min=1.0)
    # L1 alone learns each output's median, and the median of a rarely-on target (lip
    # press, rounding) is 0: a squared term makes those outputs follow the evidence.
    err = p_art - art
    l1 = (torch.abs(err) * m).sum() / (denom * art.shape[-1])
    l2 = (err.square() * ART_WEIGHTS * m).sum() / (denom * art.shape[-1])
    # velocity: the frame-to-frame change should match the target's (no jitter, no lag smear)
    mv = (mask[:, 1:] * mask[:, :-1]).unsqueeze(-1)
    dv = torch.abs((p_art[:, 1:] - p_art[:, :-1]) - (art[:, 1:] - art[:, :-1]))
    vel = (dv * mv).sum() / (mv.sum().clamp(min=1.0) * art.shape[-1])
    ce_v = F.cross_entropy(l_vis.reshape(-1, len(VISEMES)), vis.reshape(-1), ignore_index=IGNORE)
    ce_p = F.cross_entropy(l_phon.reshape(-1, len(PHONEMES)), phon.reshape(-1), ignore_index=IGNORE) \
        if bool((phon != IGNORE).any()) else torch.zeros(())
    total = 2.0 * l1 + 8.0 * l2 + 2.0 * vel + 0.5 * ce_v + 0.3 * ce_p
    return total, {"l1": l1.item(), "l2": l2.item(), "vel": vel.item(), "ce_vis": ce_v.item(),
                   "ce_phon": ce_p.item()}


@torch.no_grad()
def evaluate(model: StageA, utterances: list[Utterance], stats: FeatureStats,
             front: PhoneFeatures | None = None) -> dict[str, float]:
    """Frame metrics on clean audio, outputs aligned to their hops: viseme and 6-group accuracy, jaw correlation,
    articulation L1, bilabial (PP) recall."""
    model.eval()
    R = RIGHT_CONTEXT
    pv, tv, pj, tj, l1 = [], [], [], [], []
    for u in utterances:
        inputs = utterance_inputs(u.audio, stats, front)
        feats = inputs["mel"]
        p_art, l_vis, _ = model(**{k: torch.from_numpy(v)[None] for k, v in inputs.items()})
        f = min(len(u.visemes), len(feats) - R)
        pv.append(l_vis[0, R:R + f].argmax(-1).numpy())
        tv.append(u.visemes[:f])
        pa = p_art[0, R:R + f].numpy()
        pj.append(pa[:, 0])
        tj.append(u.articulation[:f, 0])
        l1.append(np.abs(pa - u.articulation[:f]).mean(axis=1))
    model.train()
    pv, tv, pj, tj, l1 = (np.concatenate(a) for a in (pv, tv, pj, tj, l1))
    pp = VISEMES.index("PP")
    corr = float(np.corrcoef(pj, tj)[0, 1]) if np.std(pj) > 1e-9 and np.std(tj) > 1e-9 else 0.0
    return {
        "viseme_acc": float(np.mean(pv == tv)),
        "group_acc": float(np.mean(VISEME_GROUP_INDEX[pv] == VISEME_GROUP_INDEX[tv])),
        "jaw_corr": corr,
        "art_l1": float(np.mean(l1)),
        "pp_recall": float(np.mean(pv[tv == pp] == pp)) if np.any(tv == pp) else None,
        "frames": int(len(tv)),
    }


# --------------------------------------------------------------------------- ONNX export


def build_onnx(model: StageA, stats: FeatureStats, metadata: dict[str, str]) -> onnx.ModelProto:
    """The stateful chunk model of the module docstring, from the trained weights."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    k = model.kernel
    C = model.inp.out_channels
    H = model.gru.hidden_size
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    inputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [BATCH, "frames", N_MELS])]
    outputs = []
    inputs[0].doc_string = "normalised log-mel frames (avatar_rt.audio.features.LogMelStream), oldest first"
    if model.n_phones:
        vi = helper.make_tensor_value_info("phones", TensorProto.FLOAT, [BATCH, "frames", model.n_phones])
        vi.doc_string = ("normalised log phone posteriors, one row per mel frame, 5 hops late "
                         "(avatar_rt.audio.phone_features.PhoneFeatureStream)")
        inputs.append(vi)
    big = init("slice_end", np.array([np.iinfo(np.int64).max], np.int64))
    axis2 = init("axis2", np.array([2], np.int64))

    def causal_conv(x: str, state: str, channels: int, dilation: int, w: str, b: str, tag: str) -> str:
        ctx = (k - 1) * dilation
        vi = helper.make_tensor_value_info(state, TensorProto.FLOAT, [BATCH, channels, ctx])
        vi.doc_string = f"the last {ctx} frames entering {tag} (channels first); zeros at the start"
        inputs.append(vi)
        cat = node("Concat", [state, x], f"{tag}_cat", axis=2)
        nxt = node("Slice", [cat, init(f"{tag}_start", np.array([-ctx], np.int64)), big, axis2], f"next_{state}")
        vo = helper.make_tensor_value_info(nxt, TensorProto.FLOAT, [BATCH, channels, ctx])
        vo.doc_string = f"{state} for the next call"
        outputs.append(vo)
        return node("Conv", [cat, init(f"{tag}_w", sd[w]), init(f"{tag}_b", sd[b])], f"{tag}_out",
                    kernel_shape=[k], dilations=[dilation])

    x = node("Concat", ["mel", "phones"], "mel_phones", axis=2) if model.n_phones else "mel"
    x = node("Transpose", [x], "mel_t", perm=[0, 2, 1])
    x = node("Relu", [causal_conv(x, "state_conv0", channels=N_MELS + model.n_phones, dilation=1,
                                  w="inp.weight", b="inp.bias", tag="conv0")], "conv0_relu")
    for i, d in enumerate(model.dilations):
        tag = f"conv{i + 1}"
        y = node("Relu", [causal_conv(x, f"state_{tag}", channels=C, dilation=d,
                                      w=f"blocks.{i}.weight", b=f"blocks.{i}.bias", tag=tag)], f"{tag}_relu")
        x = node("Add", [x, y], f"{tag}_res")

    # GRU: torch gate order (r, z, n) → ONNX (z, r, h); torch's n-gate is ONNX linear_before_reset=1.
    def zrh(a: np.ndarray) -> np.ndarray:
        r, z, n = np.split(a, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    W = init("gru_W", zrh(sd["gru.weight_ih_l0"])[None])
    Rw = init("gru_R", zrh(sd["gru.weight_hh_l0"])[None])
    Bw = init("gru_B", np.concatenate([zrh(sd["gru.bias_ih_l0"]), zrh(sd["gru.bias_hh_l0"])])[None])
    vi = helper.make_tensor_value_info("state_gru", TensorProto.FLOAT, [1, BATCH, H])
    vi.doc_string = "GRU hidden state; zeros at the start"
    inputs.append(vi)
    seq = node("Transpose", [x], "gru_in", perm=[2, 0, 1])  # (T, B, C)
    nodes.append(helper.make_node("GRU", [seq, W, Rw, Bw, "", "state_gru"], ["gru_y", "next_state_gru"],
                                  name="gru", hidden_size=H, linear_before_reset=1))
    vo = helper.make_tensor_value_info("next_state_gru", TensorProto.FLOAT, [1, BATCH, H])
    vo.doc_string = "state_gru for the next call"
    outputs.append(vo)
    y = node("Squeeze", ["gru_y", init("axis1", np.array([1], np.int64))], "gru_sq")  # (T, B, H)
    y = node("Transpose", [y], "gru_bt", perm=[1, 0, 2])  # (B, T, H)
    head = node("Add", [node("MatMul", [y, init("head_w", sd["head.weight"].T.copy())], "head_mm"),
                        init("head_b", sd["head.bias"])], "head")
    na, nv, nph = len(ARTICULATION), len(VISEMES), len(PHONEMES)
    axis_last = init("axis_last", np.array([2], np.int64))

    def part(a: int, b: int, tag: str) -> str:
        start, end = init(f"{tag}_s", np.array([a], np.int64)), init(f"{tag}_e", np.array([b], np.int64))
        return node("Slice", [head, start, end, axis_last], f"{tag}_logits")

    node("Sigmoid", [part(0, na, "art")], "articulation")
    node("Softmax", [part(na, na + nv, "vis")], "viseme_probs", axis=-1)
    node("Softmax", [part(na + nv, na + nv + nph, "phon")], "phoneme_probs", axis=-1)
    heads = [
        ("articulation", na, f"per output t, hop t − {model.right_context}: {', '.join(ARTICULATION)}; 0..1"),
        ("viseme_probs", nv, f"per output t, hop t − {model.right_context}: posteriors over {' '.join(VISEMES)}"),
        ("phoneme_probs", nph, f"per output t, hop t − {model.right_context}: posteriors over ARPAbet + sil"),
    ]
    head_outs = []
    for name, n, doc in heads:
        vo = helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, "frames", n])
        vo.doc_string = doc
        head_outs.append(vo)
    graph = helper.make_graph(nodes, NAME, inputs, head_outs + outputs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="avatar_rt.export")
    m.ir_version = 8
    meta = {
        "right_context_hops": str(model.right_context),
        "hop_ms": "10",
        "feature_config": json.dumps(features.config()),
        "feature_stats": stats.to_json(),
        "articulation": ",".join(ARTICULATION),
        "visemes": ",".join(VISEMES),
        "phonemes": ",".join(PHONEMES),
        "streaming": "stateful chunk model: state_* in, next_state_* out, zeros to start; any T >= 1",
        **metadata,
    }
    for key, value in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = key, value
    onnx.checker.check_model(m)
    return m


def run_onnx_chunked(session, inputs: dict[str, np.ndarray] | np.ndarray,
                     chunks: list[int] | None = None) -> dict[str, np.ndarray]:
    """Run the exported model over `utterance_inputs` (or mel (T, 80) alone), whole or in the given chunk sizes;
    outputs concatenated."""
    if isinstance(inputs, np.ndarray):
        inputs = {"mel": inputs}
    mel = inputs["mel"]
    state = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
             for i in session.get_inputs() if i.name.startswith("state_")}
    names = [o.name for o in session.get_outputs()]
    chunks = chunks or [len(mel)]
    outs: dict[str, list[np.ndarray]] = {}
    t = 0
    for n in chunks:
        res = dict(zip(names, session.run(None, {**{k: v[None, t:t + n] for k, v in inputs.items()}, **state})))
        t += n
        for key in list(state):
            state[key] = res["next_" + key]
        for name in ("articulation", "viseme_probs", "phoneme_probs"):
            outs.setdefault(name, []).append(res[name][0])
    return {k: np.concatenate(v) for k, v in outs.items()}


def export(model: StageA, stats: FeatureStats, out_dir: Path, metadata: dict[str, str],
           check: dict[str, np.ndarray], write_manifest: bool = True) -> Path:
    """Build, save and check the streaming graph: torch on the whole `check` sequence against the ONNX graph fed
    in uneven chunks (every output head; max and mean |Δ| printed and written to the manifest entry)."""
    import onnxruntime as ort  # noqa: PLC0415

    from export import parity  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{NAME}.onnx"
    m = build_onnx(model, stats, metadata)
    onnx.save(m, str(path))
    model.eval()
    with torch.no_grad():
        p_art, l_vis, l_phon = model(**{k: torch.from_numpy(v)[None] for k, v in check.items()})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    chunks, left = [], len(check["mel"])
    while left > 0:
        chunks.append(min(left, int(rng.integers(1, 9))))
        left -= chunks[-1]
    got = run_onnx_chunked(sess, check, chunks)
    ref = [p_art[0].numpy(), torch.softmax(l_vis[0], -1).numpy(), torch.softmax(l_phon[0], -1).numpy()]
    record = parity.measure(NAME, [got["articulation"], got["viseme_probs"], got["phoneme_probs"]], ref,
                            reference=f"torch (whole sequence of {len(check['mel'])} frames vs ONNX in "
                                      f"{len(chunks)} chunks)", bound=1e-4)
    if write_manifest:
        phones = (" and log phone posteriors (avatar_rt.audio.phone_features, engines/phone_am.npz)"
                  if model.n_phones else "")
        desc = (f"lip sync stage A: normalised log-mel (avatar_rt.audio.features){phones} → 7 articulation values, "
                "15 viseme and 40 phoneme posteriors per 10 ms hop, output t for hop t − "
                f"{model.right_context}; stateful chunk model (state_* in, next_state_* out, zeros to start; "
                "symbolic batch = streams)")
        manifest.update(manifest.entry_for(path, NAME, VERSION, desc, record), out_dir / manifest.MANIFEST.name)
    return path


# --------------------------------------------------------------------------- training


def one_ahead(items):
    """Yield from the iterator `items` while a thread already builds the next item: the augmentation and
    feature code is numpy and scipy, which let go of the GIL, so the next batch is made while torch trains on
    this one. Closing the generator waits for the item in flight and drops it."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="batches") as pool:
        pending = pool.submit(next, items, done)
        while True:
            item = pending.result()
            if item is done:
                return
            pending = pool.submit(next, items, done)
            yield item


@dataclass
class Config:
    epochs: int = 30
    batch: int = 16
    crop: int = 400  # feature frames per training crop (4 s)
    lr: float = 2e-3
    seed: int = 0
    tiny: bool = False
    max_steps: int | None = None  # per run (tiny)
    time_budget_s: float | None = None
    threads: int = 2
    p_augment: float = 0.5
    p_vtlp: float = 0.0  # share of examples with vocal tract length perturbation (off in the shipped model)
    # 128/128 underfit (train loss ≈ val loss); 192/256 and then 256/384 each read every held-out metric a
    # little better (docs/lipsync.md, capacity). 256/384 costs 0.54 ms a frame at run time (192/256: 0.37).
    channels: int = 256  # conv width
    hidden: int = 384  # GRU size
    bf16: bool = True  # bfloat16 autocast in training: 1.4× the steps a second at 256/384 (module docstring)
    # The `phones` input: PocketSphinx's phone posteriors beside the log-mels (avatar_rt.audio.phone_features;
    # export/lipsync/sphinx_am.py has the study). The acoustic model is exported to OUT/phone_am.npz first.
    # Off by default until a full run with it is measured (train_all --phones).
    phones: bool = False
    # Share of an utterance's draws that build a new augmented example (audio chain, log-mels, phone posteriors);
    # the others reuse its last one with a new crop. 1.0 (the log-mel model): always new. The phone posteriors cost
    # about as much CPU as a training step (docs/lipsync.md), so `train_all --phones` sets 0.3: each utterance
    # still meets ~6 acoustic conditions over 18 epochs, at a third of the front end's cost.
    sample_refresh: float = 1.0


def phone_front(train_set: list[Utterance], out_dir: Path, write_manifest: bool = True
                ) -> tuple[PhoneFeatures, dict[str, str]]:
    """The phone-posterior front end for training: the acoustic model exported to OUT/phone_am.npz (with its
    licence and manifest entry) and read back from there, so training hears exactly what the runtime loads; its
    normalisation from the clean training audio. Returns it and the stage A metadata that names it."""
    from avatar_rt.engines import sha256  # noqa: PLC0415
    from export.lipsync import sphinx_am  # noqa: PLC0415  (pocketsphinx: the model files)

    path = sphinx_am.export_engine(out_dir, write_manifest=write_manifest)
    model = AcousticModel.load(path)
    t = time.monotonic()
    front = PhoneFeatures(model, phone_stats(train_set, model))
    print(f"phone posteriors: {path} ({len(model.phones)} phones), statistics in {time.monotonic() - t:.1f} s")
    return front, {"phone_features": json.dumps(front.config(sha256(path)))}


def train(data_dir: Path, out_dir: Path, cfg: Config, checkpoint: Path | None = None,
          write_manifest: bool = True) -> tuple[Path, dict]:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    limit = 6 if cfg.tiny else None
    train_set = load_split(data_dir, "train", limit)
    if not train_set:
        raise SystemExit(f"no training utterances in {data_dir / 'train'} "
                         "(build them with python -m export.lipsync.data)")
    val_set = load_split(data_dir, "val", 3 if cfg.tiny else 200) or train_set[:3]
    others = [u.audio for u in train_set[:64]]  # babble material
    stats = compute_stats(train_set)
    front, front_meta = phone_front(train_set, out_dir, write_manifest) if cfg.phones else (None, {})
    model = StageA(channels=cfg.channels, hidden=cfg.hidden, n_phones=front.n_phones if front else 0)
    n_params = parameter_count(model)
    print(f"stage A: {n_params:,} parameters; {len(train_set)} train / {len(val_set)} val utterances; "
          f"on-the-fly augmentation p={cfg.p_augment}")
    steps_per_epoch = max(1, math.ceil(len(train_set) / cfg.batch))
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    warmup = max(1, min(200, total_steps // 10))

    def lr_factor(step: int, elapsed: float) -> float:
        """Linear warm-up, then cosine down to 2 % of the peak over the steps or the time budget, whichever
        runs out first (so a time-limited run still ends on a low learning rate)."""
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, total_steps - warmup)
        if cfg.time_budget_s:
            done = max(done, elapsed / cfg.time_budget_s)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    epochs = cfg.epochs if cfg.max_steps is None else math.ceil(total_steps / steps_per_epoch)
    order_rng = np.random.default_rng([cfg.seed, 1])  # epoch orders; `rng` belongs to the batch producer

    def batches():
        """Every step's batch, in order: the only user of `rng`, so a run is reproducible although the
        producer runs one batch ahead in its own thread."""
        last: dict[int, Sample] = {}  # each utterance's latest example (`Config.sample_refresh`)

        def sample(i: int) -> Sample:
            if i not in last or cfg.sample_refresh >= 1.0 or rng.random() < cfg.sample_refresh:
                last[i] = training_sample(train_set[i], rng, stats, others, cfg.p_augment, p_vtlp=cfg.p_vtlp,
                                          front=front)
            return last[i]

        for _ in range(epochs):
            order = order_rng.permutation(len(train_set))
            for s in range(steps_per_epoch):
                idx = (rng.integers(0, len(train_set), cfg.batch) if cfg.tiny
                       else order[s * cfg.batch:(s + 1) * cfg.batch])
                yield make_batch([sample(int(i)) for i in idx], cfg.crop, rng)

    step, t_start = 0, time.monotonic()
    metrics: dict = {}
    produced = one_ahead(batches())
    with tqdm(total=total_steps, desc="stage A", unit="step", dynamic_ncols=True) as bar:
        for epoch in range(epochs):
            for _ in range(steps_per_epoch):
                elapsed = time.monotonic() - t_start
                if step >= total_steps or (cfg.time_budget_s is not None and elapsed > cfg.time_budget_s):
                    break
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * lr_factor(step, elapsed)
                loss, parts = losses(model, next(produced), cfg.bf16)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}", l1=f"{parts['l1']:.3f}",
                                ce=f"{parts['ce_vis']:.2f}")
            out_of_time = cfg.time_budget_s is not None and time.monotonic() - t_start > cfg.time_budget_s
            if step >= total_steps or out_of_time:
                break
            if not cfg.tiny:
                metrics = evaluate(model, val_set, stats, front)
                tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                           for k, v in metrics.items()))
    produced.close()
    train_s = time.monotonic() - t_start
    metrics = evaluate(model, val_set, stats, front)
    rounded = lambda m: {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}  # noqa: E731
    print("validation: " + json.dumps(rounded(metrics)))
    heldout_set = load_split(data_dir, "heldout", 3 if cfg.tiny else 200)
    heldout = evaluate(model, heldout_set, stats, front) if heldout_set else {}
    if heldout:
        print("held-out voices and sentences: " + json.dumps(rounded(heldout)))
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "stats": stats.to_json(), "metrics": metrics,
                    "config": cfg.__dict__, **front_meta}, checkpoint)
    meta = {
        "version": VERSION,
        "parameters": str(n_params),
        "training": json.dumps({"utterances": len(train_set), "steps": step, "seconds": round(train_s, 1),
                                "seed": cfg.seed, "tiny": cfg.tiny}),
        "validation": json.dumps(rounded(metrics)),
        "heldout": json.dumps(rounded(heldout)),
        **front_meta,
    }
    check = utterance_inputs(val_set[0].audio, stats, front)
    path = export(model, stats, out_dir, meta, check, write_manifest)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB) in {train_s:.1f} s of training")
    return path, metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset directory (python -m export.lipsync.data)")
    ap.add_argument("--out", type=Path, default=manifest.ENGINES_DIR, help="engines directory (model + manifest.json)")
    ap.add_argument("--epochs", type=int, default=Config.epochs)
    ap.add_argument("--batch", type=int, default=Config.batch)
    ap.add_argument("--crop", type=int, default=Config.crop, help="training crop, in 10 ms frames")
    ap.add_argument("--lr", type=float, default=Config.lr)
    ap.add_argument("--seed", type=int, default=Config.seed)
    ap.add_argument("--time-budget", type=float, default=None,
                    help="stop training after this many seconds (the learning rate decays to fit; not deterministic)")
    ap.add_argument("--checkpoint", type=Path, default=Path("build/lipsync/stage_a.pt"))
    ap.add_argument("--augment-p", type=float, default=Config.p_augment, help="augmentation strength (0: clean)")
    ap.add_argument("--vtlp-p", type=float, default=Config.p_vtlp,
                    help="share of examples whose mel axis is stretched by 0.9–1.1 (vocal tract length "
                         "perturbation; default 0, as the shipped model)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the tiny run uses 1)")
    ap.add_argument("--channels", type=int, default=Config.channels, help=f"conv width (default {Config.channels})")
    ap.add_argument("--hidden", type=int, default=Config.hidden, help=f"GRU size (default {Config.hidden})")
    ap.add_argument("--tiny", action="store_true", help="a few seconds on a handful of utterances (tests)")
    ap.add_argument("--phones", action="store_true",
                    help="also the phone-posterior input (issue 12's second front end; off in the shipped model)")
    ap.add_argument("--no-manifest", action="store_true")
    args = ap.parse_args(argv)
    cfg = Config(epochs=args.epochs, batch=args.batch, crop=args.crop, lr=args.lr, seed=args.seed, tiny=args.tiny,
                 time_budget_s=args.time_budget, threads=args.threads, p_augment=args.augment_p,
                 p_vtlp=args.vtlp_p, channels=args.channels, hidden=args.hidden, phones=args.phones)
    if args.tiny:
        cfg.batch, cfg.crop, cfg.max_steps, cfg.threads = 4, 200, 20, 1
    train(args.data, args.out, cfg, args.checkpoint, write_manifest=not args.no_manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

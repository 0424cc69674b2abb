"""Stage B of the lip sync: a flow model of the motion residual, a many-step teacher and its 2-step student.

    python -m export.lipsync.stage_b --data DIR --stage-a engines/lipsync_stage_a.onnx --out engines/ [--tiny]

Stage A says what the mouth does; stage B says what the rest of the face does
while the mouth talks — head yaw, pitch and roll, a brow raise, blinks
(`behaviour.BEHAVIOUR`) — and that is not one answer but a distribution (one
speaker nods on the accent, another does not; blinks come when they come). So
stage B is generative: a rectified-flow model of the next behaviour frame given

* the last `HISTORY` behaviour frames (its own past output: autoregressive),
* stage A's outputs (articulation, viseme posteriors) for those frames and the
  frame energy 80 ms ahead of each (what the features already hold when stage A's
  output for the frame exists: stage B adds no latency),
* a style: `motion` (amplitude of head, nods and brows) and `blink_per_min`.

It predicts the frame-to-frame *change* (scaled per dimension by `D_SCALE`),
which keeps the motion smooth, and is integrated at run time.

## Training (all on the dataset of export.lipsync.data, train split)

1. Sequences: each utterance gets 0–2.5 s (now and then up to 8 s) of microphone-floor
   silence before and after,
   the same random augmentation as stage A, stage A's ONNX run over it (the runtime's
   feature code and statistics), and a freshly drawn behaviour trajectory
   (`behaviour.behaviour`) for its speech.
2. Teacher: flow matching — x(t) = (1 − t)·noise + t·target, the network regresses
   the velocity target − noise; AdamW, cosine decay. Sampled with `TEACHER_STEPS`
   Euler steps (`avatar_rt.motion.sampler.FlowSampler`). Teacher forcing sees a
   *corrupted* past (`corrupt_history`) with the target corrected to match, so that
   at run time, where the past is the model's own output, it steers back to
   plausible motion instead of amplifying its own errors.
3. Student: progressive distillation (Salimans & Ho, 2022) — halve the step count
   round by round (64 → 32 → … → 2); in each round a copy of the current model
   learns to make in one Euler step what the current model makes in two, from points
   of the flow's marginal at the student's grid times. The student is the same
   network; only the step count at which it is accurate changes.

Both are exported as ONNX (opset 17, hand-built from the weights, checked against
torch): `lipsync_stage_b_teacher.onnx` and `lipsync_stage_b.onnx` (the student, the
runtime default); the metadata carries the context layout, scales, style ranges,
default step count and the sha256 of the stage A model the conditioning came from.

Cost on the 2-core machine (one thread): sequences ≈ 50 ms per utterance; teacher
≈ 9 ms per step (batch 512); distillation ≈ 14 ms per step. Defaults: 1 500 utterances,
12 000 teacher steps, 5 rounds of 2 000 distillation steps (4 000 for the last two): about
6 minutes. `--tiny`:
a few seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see stage_a: shared cores
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402
from tqdm import tqdm  # noqa: E402

from avatar_rt.audio.features import HOP, FeatureStats  # noqa: E402
from avatar_rt.audio.phone_features import ENGINE_NAME as PHONE_ENGINE  # noqa: E402
from avatar_rt.audio.phone_features import PhoneFeatures  # noqa: E402
from avatar_rt.engines import sha256  # noqa: E402
from avatar_rt.motion.sampler import time_grid  # noqa: E402
from export import manifest, parity  # noqa: E402
from export.lipsync import behaviour as bh  # noqa: E402
from export.lipsync import stage_a  # noqa: E402

NAME_STUDENT = "lipsync_stage_b"
NAME_TEACHER = "lipsync_stage_b_teacher"
VERSION = "1.0.0"
OPSET = 17
HISTORY = 8  # behaviour frames of the past in the context (320 ms)
# Behaviour frames of conditioning ahead. 0: frame k must be ready when video frame k is shown, and stage A's
# row for frame k is the newest it has then (its output for a hop comes 80 ms of audio later). The energy in
# each row is taken stage A's right context ahead instead: those features exist by then.
LOOKAHEAD = 0
TEACHER_STEPS = 64  # a power of two times STUDENT_STEPS: progressive distillation halves it
STUDENT_STEPS = 2
COND = ("articulation", 7), ("viseme_probs", 15), ("energy", 1)
COND_DIM = sum(n for _, n in COND)
X_SCALE = np.array([0.08, 0.03, 0.02, 0.11, 0.17], np.float32)  # ~ std of each behaviour dimension
D_SCALE = np.array([0.006, 0.005, 0.0015, 0.04, 0.08], np.float32)  # ~ std of its frame-to-frame change
STYLE_HIGH = np.array([bh.STYLE_RANGES[k][1] for k in bh.STYLE], np.float32)
CONTEXT_DIM = HISTORY * len(bh.BEHAVIOUR) + (HISTORY + 1 + LOOKAHEAD) * COND_DIM + len(bh.STYLE)
TIME_FREQS = np.array([1.0, 2.0, 4.0, 8.0, 16.0], np.float32)
assert len(X_SCALE) == len(D_SCALE) == len(bh.BEHAVIOUR)


# --------------------------------------------------------------------------- the network


class VelocityNet(nn.Module):
    """v(x, t | context): an MLP with residual hidden layers and Fourier features of t."""

    def __init__(self, dim: int = len(bh.BEHAVIOUR), context: int = CONTEXT_DIM, hidden: int = 256, layers: int = 3):
        super().__init__()
        self.register_buffer("freqs", torch.from_numpy(TIME_FREQS * math.pi))
        self.inp = nn.Linear(dim + 1 + 2 * len(TIME_FREQS) + context, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        ang = t * self.freqs
        h = nn.functional.silu(self.inp(torch.cat([x, t, torch.sin(ang), torch.cos(ang), context], dim=1)))
        for layer in self.hidden:
            h = h + nn.functional.silu(layer(h))
        return self.out(h)


def euler(net: VelocityNet, noise: torch.Tensor, context: torch.Tensor, steps: int) -> torch.Tensor:
    """The torch twin of avatar_rt.motion.sampler.FlowSampler (same grid, same update)."""
    grid = time_grid(steps)
    x = noise
    for t0, t1 in zip(grid[:-1], grid[1:]):
        t = torch.full((len(x), 1), float(t0))
        x = x + float(t1 - t0) * net(x, t, context)
    return x


# --------------------------------------------------------------------------- data


@dataclass
class Sequence:
    cond: np.ndarray  # (K, COND_DIM) stage A outputs + energy per behaviour frame
    x: np.ndarray  # (K, len(BEHAVIOUR)) behaviour targets
    style: np.ndarray  # (len(STYLE),)


class StageAOffline:
    """Stage A's ONNX over a whole utterance: the conditioning rows the runtime would compute, hop by hop."""

    def __init__(self, path: Path):
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.stats = FeatureStats.from_json(meta["feature_stats"])
        self.right_context = int(meta["right_context_hops"])
        self.sha256 = sha256(path)
        # the phone-posterior input, if the model has one: its acoustic model lies beside it (train_all's OUT)
        self.front = (PhoneFeatures.from_config(meta["phone_features"], path.parent / f"{PHONE_ENGINE}.npz")
                      if "phone_features" in meta else None)

    def cond_rows(self, audio: np.ndarray) -> np.ndarray:
        """(frames_for_hops(n_hops), COND_DIM): row k from hop 4k + 2 (`behaviour_cond_rows`)."""
        inputs = stage_a.utterance_inputs(audio, self.stats, self.front)
        mel = inputs["mel"]
        out = stage_a.run_onnx_chunked(self.session, inputs)
        n = len(mel) - self.right_context
        r = self.right_context
        return behaviour_cond_rows(out["articulation"][r:r + n], out["viseme_probs"][r:r + n], mel.mean(axis=1), r)


def behaviour_cond_rows(articulation: np.ndarray, viseme_probs: np.ndarray, energy: np.ndarray,
                        energy_ahead: int) -> np.ndarray:
    """Row k: stage A's outputs at hop 4k + 2 and the energy of feature frame 4k + 2 + energy_ahead.
    `energy` has one value per feature frame, `energy_ahead` more than the outputs."""
    hops = bh.HOPS_PER_FRAME * np.arange(bh.frames_for_hops(len(articulation))) + 2
    return np.concatenate([articulation[hops], viseme_probs[hops], energy[hops + energy_ahead, None]],
                          axis=1).astype(np.float32)


def make_sequence(path: Path, stage: StageAOffline, rng: np.random.Generator, others: list[np.ndarray],
                  p_augment: float) -> Sequence:
    from export.lipsync import augment  # noqa: PLC0415

    with np.load(path) as z:
        audio, phon, starts, ends = z["audio"], z["phonemes"], z["starts"], z["ends"]
    # 0–2.5 s of silence around the speech, and now and then a long one (a listener's pause: blinks go on)
    lead, trail = (int(rng.uniform(0.0, 8.0 if rng.random() < 0.3 else 2.5) * 100) * HOP for _ in range(2))
    floor = rng.uniform(0.0, 6.0)
    clean = np.concatenate([np.zeros(lead, np.int16), audio, np.zeros(trail, np.int16)])
    noisy = np.clip(clean + rng.normal(0.0, floor, len(clean)), -32768, 32767).astype(np.int16)
    noisy = augment.augment(noisy, rng, others, p=p_augment)
    cond = stage.cond_rows(noisy)
    shift = lead / 16000
    x, style = bh.behaviour(phon, starts + shift, ends + shift, clean, len(cond), rng)
    return Sequence(cond, x, style)


def examples(seqs: list[Sequence]) -> tuple[np.ndarray, np.ndarray]:
    """(contexts (N, CONTEXT_DIM), scaled changes (N, D)) for every frame with its full lookahead."""
    from numpy.lib.stride_tricks import sliding_window_view as windows

    ctxs, targets = [], []
    for s in seqs:
        K = len(s.x) - LOOKAHEAD
        if K <= 0:
            continue
        xp = np.concatenate([np.zeros((HISTORY, s.x.shape[1]), np.float32), s.x])
        cp = np.concatenate([np.repeat(s.cond[:1], HISTORY, axis=0), s.cond])
        hist = windows(xp, HISTORY, axis=0)[:K].transpose(0, 2, 1) / X_SCALE  # (K, H, D)
        cwin = windows(cp, HISTORY + 1 + LOOKAHEAD, axis=0)[:K].transpose(0, 2, 1)  # (K, H + 1 + L, C)
        style = np.broadcast_to(s.style / STYLE_HIGH, (K, len(bh.STYLE)))
        ctxs.append(np.concatenate([hist.reshape(K, -1), cwin.reshape(K, -1), style], axis=1))
        targets.append((s.x[:K] - xp[HISTORY - 1:HISTORY - 1 + K]) / D_SCALE)
    return np.concatenate(ctxs).astype(np.float32), np.concatenate(targets).astype(np.float32)


# --------------------------------------------------------------------------- ONNX


def build_onnx(net: VelocityNet, metadata: dict[str, str]) -> onnx.ModelProto:
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    nodes, inits = [], []

    def init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def linear(x: str, prefix: str) -> str:
        w = init(f"{prefix}.w", sd[f"{prefix}.weight"].T)
        b = init(f"{prefix}.b", sd[f"{prefix}.bias"])
        return node("Add", [node("MatMul", [x, w], f"{prefix}.mm"), b], f"{prefix}.out")

    def silu(x: str, tag: str) -> str:
        return node("Mul", [x, node("Sigmoid", [x], f"{tag}.sig")], f"{tag}.silu")

    D = net.out.out_features
    C = net.inp.in_features - D - 1 - 2 * len(TIME_FREQS)
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [stage_a.BATCH, D]),
           helper.make_tensor_value_info("t", TensorProto.FLOAT, [stage_a.BATCH, 1]),
           helper.make_tensor_value_info("context", TensorProto.FLOAT, [stage_a.BATCH, C])]
    ins[0].doc_string = "the point on the flow path (scaled behaviour change)"
    ins[1].doc_string = "flow time, 0 = noise … 1 = data"
    ins[2].doc_string = "history, conditioning window and style (metadata: context_layout)"
    ang = node("Mul", ["t", init("freqs", sd["freqs"][None, :])], "ang")
    h = node("Concat", ["x", "t", node("Sin", [ang], "sin"), node("Cos", [ang], "cos"), "context"], "features", axis=1)
    h = silu(linear(h, "inp"), "inp")
    for i in range(len(net.hidden)):
        h = node("Add", [h, silu(linear(h, f"hidden.{i}"), f"hidden.{i}")], f"res{i}")
    out = linear(h, "out")
    nodes.append(helper.make_node("Identity", [out], ["velocity"], name="velocity"))
    outs = [helper.make_tensor_value_info("velocity", TensorProto.FLOAT, [stage_a.BATCH, D])]
    graph = helper.make_graph(nodes, "lipsync_stage_b", ins, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="avatar_rt.export")
    model.ir_version = 8
    for k, v in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    return model


def export(net: VelocityNet, name: str, out_dir: Path, metadata: dict[str, str], write_manifest: bool) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.onnx"
    onnx.save(build_onnx(net, metadata), str(path))
    g = torch.Generator().manual_seed(0)
    x, t, c = torch.randn(64, net.out.out_features, generator=g), torch.rand(64, 1, generator=g), torch.randn(
        64, net.inp.in_features - net.out.out_features - 1 - 2 * len(TIME_FREQS), generator=g)
    with torch.no_grad():
        ref = net(x, t, c).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["velocity"], {"x": x.numpy(), "t": t.numpy(), "context": c.numpy()})[0]
    record = parity.measure(name, got, ref, reference="torch (64 random rows)", bound=1e-4)
    if write_manifest:
        role = metadata["role"]
        desc = (f"lip sync stage B ({role}, {metadata['steps']} steps by default): rectified-flow velocity of the next "
                "behaviour frame (head yaw/pitch/roll, brow raise, blink) given its history, stage A's outputs and "
                "a style; sample with avatar_rt.motion.sampler.FlowSampler")
        manifest.update(manifest.entry_for(path, name, VERSION, desc, record), out_dir / manifest.MANIFEST.name)
    return path


def metadata(role: str, steps: int, stage: StageAOffline, extra: dict) -> dict[str, str]:
    return {
        "role": role,
        "steps": str(steps),
        "version": VERSION,
        "behaviour": ",".join(bh.BEHAVIOUR),
        "fps": str(bh.FPS),
        "hops_per_frame": str(bh.HOPS_PER_FRAME),
        "history": str(HISTORY),
        "lookahead": str(LOOKAHEAD),
        "energy_ahead_hops": str(stage.right_context),
        "cond": json.dumps(dict(COND)),
        "context_layout": "history/x_scale (history × behaviour, oldest first) | cond rows k−history … k+lookahead "
                          "(articulation and viseme_probs at hop 4k+2, mean normalised log-mel of feature frame "
                          "4k+2+energy_ahead_hops) | style / style_high",
        "x_scale": json.dumps(X_SCALE.tolist()),
        "d_scale": json.dumps(D_SCALE.tolist()),
        "style": ",".join(bh.STYLE),
        "style_ranges": json.dumps(bh.STYLE_RANGES),
        "style_defaults": json.dumps(bh.DEFAULT_STYLE),
        "limits": json.dumps(bh.LIMITS.tolist()),
        "stage_a_sha256": stage.sha256,
        **extra,
    }


# --------------------------------------------------------------------------- training


@dataclass
class Config:
    utterances: int = 1500
    teacher_steps: int = 12000
    distill_steps: int = 2000  # per halving round (TEACHER_STEPS → … → STUDENT_STEPS)
    batch: int = 512
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    p_augment: float = 0.5
    tiny: bool = False


def tiny_config(seed: int = 0) -> Config:
    """The whole training on a handful of utterances in a few seconds, one thread (the tests)."""
    return Config(utterances=6, teacher_steps=30, distill_steps=10, batch=64, seed=seed, threads=1, tiny=True)


def _cosine(step: int, total: int, warmup: int = 100) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _descend(opt: torch.optim.Optimizer, net: nn.Module, loss: torch.Tensor) -> None:
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def corrupt_history(context: torch.Tensor, change: torch.Tensor, blink_p: float = 0.0):
    """Teacher forcing with a corrupted past, and the target corrected to match it.

    At run time the history is the model's own output, not the data; so training shows it slightly wrong
    pasts (Gaussian noise on every value; on a quarter of the examples a spurious partial eyelid closure
    over the last 1–3 frames) and asks for the true next frame *relative to the corrupted last one*: the
    network learns to steer back instead of running with its own errors (a half-closed eye that is not a
    blink reopens rather than turning into one)."""
    n, h, d = len(context), HISTORY, len(bh.BEHAVIOUR)
    x_scale = torch.from_numpy(X_SCALE)
    noise = 0.03 * torch.randn(n, h, d)  # in X_SCALE units
    blink = (torch.randn(n, 1).abs() * 0.05) * (torch.rand(n, 1) < blink_p)  # eyelid closure (absolute)
    recent = torch.arange(h)[None, :] >= h - torch.randint(1, 4, (n, 1))
    noise[:, :, bh.BLINK] += blink * recent / x_scale[bh.BLINK]
    context = context.clone()
    context[:, :h * d] += noise.reshape(n, h * d)
    shift = noise[:, -1, :] * x_scale  # how far the last frame moved, absolute
    return context, change - shift / torch.from_numpy(D_SCALE)


def halve(model: VelocityNet, steps: int, ctx: torch.Tensor, tgt: torch.Tensor, rng: np.random.Generator,
          cfg: Config) -> tuple[VelocityNet, int, dict]:
    """One round of progressive distillation: a copy of `model` whose one Euler step does two of `model`'s."""
    half = steps // 2
    student = copy.deepcopy(model).train()
    model.eval()
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr * 0.3, weight_decay=1e-4)
    dt = 1.0 / half
    # The last rounds are the hard ones (few steps must carry noise to "blink now or not"): twice the steps.
    n_steps = cfg.distill_steps * (2 if half <= 4 else 1)
    with tqdm(total=n_steps, desc=f"stage B distil {steps}→{half} steps", unit="step", dynamic_ncols=True) as bar:
        for step in range(n_steps):
            for gr in opt.param_groups:
                gr["lr"] = cfg.lr * 0.3 * _cosine(step, n_steps)
            idx = torch.from_numpy(rng.integers(0, len(ctx), cfg.batch))
            c, x1 = corrupt_history(ctx[idx], tgt[idx])
            z = torch.randn(x1.shape)
            t = torch.from_numpy(rng.integers(0, half, (len(x1), 1)).astype(np.float32)) * dt
            xt = (1 - t) * z + t * x1
            with torch.no_grad():
                xm = xt + 0.5 * dt * model(xt, t, c)
                x2 = xm + 0.5 * dt * model(xm, t + 0.5 * dt, c)
            loss = nn.functional.mse_loss(student(xt, t, c), (x2 - xt) / dt)
            _descend(opt, student, loss)
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
    return student, half, {"steps": half, "final_loss": round(loss.item(), 5)}


def train(data_dir: Path, stage_a_path: Path, out_dir: Path, cfg: Config, write_manifest: bool = True) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_start = time.monotonic()
    paths = sorted((data_dir / "train").glob("*.npz"))[:cfg.utterances]
    val_paths = sorted((data_dir / "val").glob("*.npz"))[:max(3, cfg.utterances // 20)] or paths[:3]
    if not paths:
        raise SystemExit(f"no training utterances in {data_dir / 'train'} (python -m export.lipsync.data)")
    if not stage_a_path.exists():
        raise SystemExit(f"stage B is conditioned on stage A: {stage_a_path} is missing (export.lipsync.stage_a)")
    stage = StageAOffline(stage_a_path)
    others = [np.load(p)["audio"] for p in paths[:32]]
    seqs = [make_sequence(p, stage, rng, others, cfg.p_augment)
            for p in tqdm(paths, desc="stage B sequences", unit="utt", dynamic_ncols=True)]
    val_seqs = [make_sequence(p, stage, rng, others, cfg.p_augment) for p in val_paths]
    ctx, tgt = examples(seqs)
    vctx, vtgt = examples(val_seqs)
    ctx_t, tgt_t = torch.from_numpy(ctx), torch.from_numpy(tgt)
    print(f"stage B: {len(seqs)} utterances, {len(ctx):,} frames ({len(ctx) / bh.FPS / 60:.0f} min), "
          f"context {CONTEXT_DIM}")
    seq_s = time.monotonic() - t_start

    def flow_loss(net: VelocityNet, c: torch.Tensor, x1: torch.Tensor, gen: torch.Generator | None = None):
        z = torch.randn(x1.shape, generator=gen)
        t = torch.rand(len(x1), 1, generator=gen)
        return nn.functional.mse_loss(net((1 - t) * z + t * x1, t, c), x1 - z)

    teacher = VelocityNet()
    opt = torch.optim.AdamW(teacher.parameters(), lr=cfg.lr, weight_decay=1e-4)
    t0 = time.monotonic()
    with tqdm(total=cfg.teacher_steps, desc="stage B teacher", unit="step", dynamic_ncols=True) as bar:
        for step in range(cfg.teacher_steps):
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _cosine(step, cfg.teacher_steps)
            idx = torch.from_numpy(rng.integers(0, len(ctx), cfg.batch))
            c, y = corrupt_history(ctx_t[idx], tgt_t[idx])
            loss = flow_loss(teacher, c, y)
            _descend(opt, teacher, loss)
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    teacher_s = time.monotonic() - t0
    teacher.eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        vc, vt = torch.from_numpy(vctx), torch.from_numpy(vtgt)
        val_flow = float(np.mean([flow_loss(teacher, vc, vt, g).item() for _ in range(4)]))

    # Progressive distillation: halve the step count until STUDENT_STEPS, each student step trained to land
    # where two steps of the current model land, from points of the flow's own marginal at t.
    t0 = time.monotonic()
    current, n = teacher, TEACHER_STEPS
    rounds: list[dict] = []
    while n > STUDENT_STEPS:
        current, n, info = halve(current, n, ctx_t, tgt_t, rng, cfg)
        rounds.append(info)
    student = current.eval()
    student_s = time.monotonic() - t0
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        k = min(len(vctx), 8192)
        vc = torch.from_numpy(vctx[:k])
        z = torch.randn(k, len(bh.BEHAVIOUR), generator=g)
        ref = euler(teacher, z, vc, TEACHER_STEPS)
        before = float(nn.functional.mse_loss(euler(teacher, z, vc, STUDENT_STEPS), ref))
        after = float(nn.functional.mse_loss(euler(student, z, vc, STUDENT_STEPS), ref))
    report = {"utterances": len(seqs), "frames": int(len(ctx)), "val_flow_loss": round(val_flow, 4),
              "teacher_2_step_mse_to_teacher": round(before, 4), "student_2_step_mse_to_teacher": round(after, 4),
              "distillation": rounds,
              "seconds": {"sequences": round(seq_s, 1), "teacher": round(teacher_s, 1),
                          "distillation": round(student_s, 1)},
              "seed": cfg.seed, "tiny": cfg.tiny}
    print("stage B: " + json.dumps(report))
    extra = {"training": json.dumps(report), "parameters": str(sum(p.numel() for p in teacher.parameters()))}
    export(teacher, NAME_TEACHER, out_dir, metadata("teacher", TEACHER_STEPS, stage, extra), write_manifest)
    path = export(student, NAME_STUDENT, out_dir, metadata("student", STUDENT_STEPS, stage, extra), write_manifest)
    print(f"wrote {path.parent / (NAME_TEACHER + '.onnx')} and {path} in {time.monotonic() - t_start:.0f} s")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.lipsync.stage_b", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset directory (python -m export.lipsync.data)")
    ap.add_argument("--stage-a", type=Path, default=manifest.ENGINES_DIR / f"{stage_a.NAME}.onnx",
                    help="the stage A model whose outputs condition stage B")
    ap.add_argument("--out", type=Path, default=manifest.ENGINES_DIR, help="engines directory (models + manifest)")
    ap.add_argument("--utterances", type=int, default=Config.utterances, help="training utterances used")
    ap.add_argument("--teacher-steps", type=int, default=Config.teacher_steps, help="teacher optimizer steps")
    ap.add_argument("--distill-steps", type=int, default=Config.distill_steps,
                    help="optimizer steps per round of progressive distillation")
    ap.add_argument("--seed", type=int, default=Config.seed)
    ap.add_argument("--threads", type=int, default=Config.threads, help="torch threads")
    ap.add_argument("--tiny", action="store_true", help="a few seconds on a handful of utterances (tests)")
    ap.add_argument("--no-manifest", action="store_true")
    args = ap.parse_args(argv)
    cfg = tiny_config(args.seed) if args.tiny else Config(
        utterances=args.utterances, teacher_steps=args.teacher_steps, distill_steps=args.distill_steps,
        seed=args.seed, threads=args.threads)
    train(args.data, args.stage_a, args.out, cfg, write_manifest=not args.no_manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

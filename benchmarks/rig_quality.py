"""Rig + renderer quality, measured by re-detecting landmarks on rendered frames with MediaPipe.

    python benchmarks/rig_quality.py [--avatar photo.jpg] [--steps 8] [--json out.json]

Everything is measured on the real rig (`LandmarkRig.pose`) and the real
renderer (`PortraitRenderer.render`), with MediaPipe Face Mesh (static-image
graph, 478 landmarks, the same detector that analysed the reference) run on
every rendered frame. All distances are divided by the reference's
inter-ocular distance (IOD, eye-centre to eye-centre) and printed in % IOD.

Notation for one frame: `cmd` = the rig's commanded landmark positions
(`pose.points`), `det` = MediaPipe's re-detection on the rendered frame,
`rest` = `cmd` at the all-zero parameter vector, `ref` = MediaPipe's detection
on the reference image itself (`portrait.image`).

0. MediaPipe at rest and its floor (context for every number below).
   * rest bias = |ref − rest|: how far MediaPipe's own reading of the untouched
     reference sits from the rig's rest pose. It is 0 when the rig's rest pose
     is MediaPipe's detection on the reference (the slice rig); a 3D rig fitted
     to the canonical face will not reproduce it exactly.
   * floor: the reference image moved rigidly with `cv2.warpAffine` (sub-pixel
     shifts, and shifts, rotations and scales out to the rig's head-pose
     ranges: ±0.3 IOD, ±0.4 rad, ±15 %) — a perfect renderer of a
     rigid motion — and re-detected; the error against the exactly transformed
     `ref` landmarks is what MediaPipe alone contributes.
   * non-rigid floor: the reference deformed by a smooth, exactly known field
     (Gaussian bumps on the landmarks: mouth corners pulled apart or together, the lower
     face stretched down, the corners lifted; and the lips parted, the exact
     geometry of a jaw opening with the mouth's own pixels stretched) through an
     exactly inverted `cv2.remap`, re-detected against the exactly moved `ref`
     landmarks. `gain`
     is the share of the true motion the re-detection shows (1 = all of it):
     below 1, MediaPipe's face prior pulls the shape back towards its mean.

1. Render fidelity (issue target: ≤ 2 % IOD). For every component of `PARAMS`,
   at `--steps` values evenly spread over its full range (0 skipped), one frame
   is rendered with only that component set. Over the mouth and eye landmarks
   (inner + outer lip contours, both eye contours: 72 points):
   * raw  = mean_i |det_i − cmd_i|                       (the issue's wording)
   * rel  = mean_i |(det_i − ref_i) − (cmd_i − rest_i)|  (MediaPipe's rest bias removed)
   The table shows, per parameter, the value with the worst raw error and the
   worst raw and rel errors over all values, plus
   * `moved`: the largest commanded displacement of any landmark at any tested
     value (a parameter the rig does not move yet scores a vacuous 0 and is
     marked so);
   * `all478`: the worst rel error over all 478 landmarks (brows, nose, oval,
     irises too; context, not the target);
   * `gain` (as in the floor above, at the worst value): the share of the
     commanded mouth+eye motion that the re-detection shows;
   * `iris`: the worst raw error over the 10 iris landmarks, which the target
     leaves out but which is where gaze shows.
   A parameter is flagged when raw or rel > 2 %.
   A closed eye has no contour for MediaPipe to find, so an eye whose commanded
   opening (centre upper-lid to centre lower-lid landmark) is below half its
   rest opening is left out of that frame's error; every parameter that closes
   an eye that far (the blinks) is measured instead by the eye opening:
   the re-detected opening must fall monotonically as the commanded one falls
   (a step may go the wrong way by at most 0.25 % IOD, detector noise).
   A last row renders random mixes of all components at once (each uniform in
   40 % of its range), reported separately.

2. Identity (target ≥ 40 dB): every parameter at rest, idle off → PSNR of the
   rendered frame against `portrait.image` (∞ when bit-identical).

3. Stability (target ≤ 0.5 % IOD): `IdleMotion` without audio for `--seconds`
   at `--fps`, each frame rendered and re-detected. For each pair of
   consecutive frames the jitter is
       mean over all 478 landmarks of |(det_t+1 − det_t) − (cmd_t+1 − cmd_t)|,
   i.e. how much the re-detected motion differs from the commanded motion
   from one frame to the next (a static frame's jitter is its change in
   re-detection alone). Reported as median / p95 / max over frame pairs, for:
   sway on with blink frames (any pair touching a frame with blink_l or
   blink_r > 0.01) excluded — the headline, judged on its p95 —, sway on with
   blinks included, and sway off with blinks excluded (only rest frames
   remain: rendering and detection are deterministic, so this is exactly 0
   unless the renderer shimmers on a still face).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from machine import machine  # benchmarks/machine.py, beside this script

FIDELITY_TARGET = 2.0  # % IOD
PSNR_TARGET = 40.0  # dB
JITTER_TARGET = 0.5  # % IOD
CLOSED_EYE_FRACTION = 0.5  # an eye commanded below this fraction of its rest opening is "closing"
MONOTONIC_SLACK = 0.25  # % IOD a step of the eye opening may go the wrong way (detector noise)
BLINK_FRAME = 0.01




def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def fmt_db(v: float) -> str:
    return "inf (bit-identical)" if math.isinf(v) else f"{v:.2f} dB"


def test_values(low: float, high: float, steps: int) -> list[float]:
    vals = np.linspace(low, high, steps + 1)
    return [round(float(v), 6) for v in vals if abs(v) > 1e-9]


class Quality:
    def __init__(self, portrait, seed: int):
        from avatar_rt.avatar import landmarks as lm
        from avatar_rt.avatar.reference import detect_faces
        from avatar_rt.motion.params import MotionParams
        from avatar_rt.render.renderer import PortraitRenderer
        from avatar_rt.rig.landmark_rig import LandmarkRig

        self.lm = lm
        self._detect_faces = detect_faces
        self.MotionParams = MotionParams
        self.portrait = portrait
        self.rig = LandmarkRig(portrait)
        self.renderer = PortraitRenderer(portrait)
        self.iod = float(portrait.inter_ocular)
        self.rng = np.random.default_rng(seed)
        self.n_detect = 0
        self.detect_s = 0.0
        self.eyes = []
        for name, upper, lower in (("right", lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
                                   ("left", lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER)):
            contour = sorted(set(upper) | set(lower))
            self.eyes.append({"name": name, "contour": np.array(contour),
                              "centre": (upper[len(upper) // 2], lower[len(lower) // 2])})
        eye_ids = set().union(*(set(e["contour"].tolist()) for e in self.eyes))
        lip_ids = set(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER + lm.LIPS_INNER_UPPER + lm.LIPS_INNER_LOWER)
        self.region = np.array(sorted(lip_ids | eye_ids))
        self.iris = np.arange(lm.NUM_FACE_LANDMARKS, lm.NUM_LANDMARKS)
        self.groups = {
            "outer lips": np.array(sorted(set(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER))),
            "inner lips": np.array(sorted(set(lm.LIPS_INNER_UPPER + lm.LIPS_INNER_LOWER))),
            "right eye": self.eyes[0]["contour"], "left eye": self.eyes[1]["contour"],
        }
        self.rest_pose = self.rig.pose(MotionParams())
        self.rest = self.rest_pose.points.astype(np.float64)
        self.rest_opening = [self.opening(self.rest, e) for e in self.eyes]
        self.ref = self.detect(portrait.image)
        if self.ref is None:
            raise SystemExit("MediaPipe finds no face in the reference image itself")

    # -- helpers -------------------------------------------------------------------------------
    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        t = time.perf_counter()
        faces = self._detect_faces(np.ascontiguousarray(bgr[:, :, ::-1]))
        self.detect_s += time.perf_counter() - t
        self.n_detect += 1
        return faces[0][:, :2].astype(np.float64) if faces else None

    def pct(self, d: np.ndarray) -> np.ndarray:
        return 100.0 * np.linalg.norm(d, axis=-1) / self.iod

    @staticmethod
    def opening(points: np.ndarray, eye: dict) -> float:
        up, low = eye["centre"]
        return float(np.linalg.norm(points[low] - points[up]))

    def closing_eyes(self, cmd: np.ndarray) -> list[int]:
        return [k for k, e in enumerate(self.eyes)
                if self.opening(cmd, e) < CLOSED_EYE_FRACTION * self.rest_opening[k]]

    def errors(self, cmd: np.ndarray, det: np.ndarray) -> dict:
        """raw / rel errors in % IOD over the mouth+eye region (closing eyes left out) and rel over all."""
        region = self.region
        closing = self.closing_eyes(cmd)
        if closing:
            drop = np.concatenate([self.eyes[k]["contour"] for k in closing])
            region = np.setdiff1d(region, drop)
        raw = self.pct(det - cmd)
        rel_all = self.pct((det - self.ref) - (cmd - self.rest))
        # gain: how much of the commanded motion the re-detection shows (1 = all of it, 0 = none)
        want = (cmd - self.rest)[region]
        got = (det - self.ref)[region]
        power = float(np.sum(want * want))
        gain = float(np.sum(got * want) / power) if power > (0.01 * self.iod) ** 2 else None
        groups = {name: float(raw[np.intersect1d(ids, region)].mean()) for name, ids in self.groups.items()
                  if len(np.intersect1d(ids, region))}
        return {"raw": float(raw[region].mean()), "rel": float(rel_all[region].mean()),
                "iris": float(raw[self.iris].mean()),
                "all478": float(rel_all.mean()), "gain": gain, "raw_by_group": groups,
                "closing_eyes": [self.eyes[k]["name"] for k in closing]}

    def frame(self, params):
        pose = self.rig.pose(params)
        image = self.renderer.render(pose)
        return pose.points.astype(np.float64), image

    # -- 0. MediaPipe at rest and its floor ----------------------------------------------------
    def mediapipe_context(self) -> dict:
        import cv2

        bias = self.pct(self.ref - self.rest)
        _, rest_image = self.frame(self.MotionParams())
        det_rest = self.detect(rest_image)
        rest_render = None if det_rest is None else self.pct(det_rest - self.ref)
        size = self.portrait.size
        c = np.array([size / 2, size / 2])
        transforms = []
        for dx, dy in ((0.25, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)):
            transforms.append((f"shift {dx:g},{dy:g} px", np.array([[1, 0, dx], [0, 1, dy]], float)))
        for f in (0.1, -0.1, 0.3, -0.3):
            transforms.append((f"shift x {f:+g} IOD", np.array([[1, 0, f * self.iod], [0, 1, 0]], float)))
            transforms.append((f"shift y {f:+g} IOD", np.array([[1, 0, 0], [0, 1, f * self.iod]], float)))
        for ang in (0.1, -0.1, 0.2, -0.2, 0.4, -0.4):  # + is clockwise in the image, like head_roll
            transforms.append((f"rotate {ang:+g} rad", cv2.getRotationMatrix2D(tuple(c), -math.degrees(ang), 1.0)))
        for sc in (1.05, 0.95, 1.15, 0.85):
            transforms.append((f"scale {sc:g}", cv2.getRotationMatrix2D(tuple(c), 0.0, sc)))
        rows = []
        for name, m in transforms:
            img = cv2.warpAffine(self.portrait.image, m, (size, size), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
            det = self.detect(img)
            moved_ref = self.ref @ m[:, :2].T + m[:, 2]
            if det is None:
                rows.append({"transform": name, "detected": False})
                continue
            err = self.pct(det - moved_ref)
            rows.append({"transform": name, "detected": True, "region": float(err[self.region].mean()),
                         "all478": float(err.mean()), "max": float(err.max())})
        return {
            "nonrigid_floor": self.nonrigid_floor(),
            "rest_bias_region_mean": float(bias[self.region].mean()),
            "rest_bias_region_max": float(bias[self.region].max()),
            "rest_bias_all_mean": float(bias.mean()),
            "rest_render_vs_ref_region_mean": None if rest_render is None else float(rest_render[self.region].mean()),
            "rest_render_vs_ref_max": None if rest_render is None else float(rest_render.max()),
            "floor": rows,
        }

    def nonrigid_floor(self) -> list[dict]:
        import cv2

        iod, ref = self.iod, self.ref
        lm = self.lm
        c0, c1 = ref[lm.MOUTH_CORNERS[0]], ref[lm.MOUTH_CORNERS[1]]
        chin_side = ref[list(lm.LIPS_OUTER_LOWER)].mean(axis=0) + np.array([0.0, 0.2 * iod])
        lip_top = float(ref[list(lm.LIPS_INNER_UPPER)][:, 1].mean())
        lower_lip = ref[list(lm.LIPS_OUTER_LOWER)].mean(axis=0)

        def bumps(*spec):
            """Gaussian bumps (centre, sigma in IOD, move in IOD): a smooth field."""
            def field(pts: np.ndarray) -> np.ndarray:
                d = np.zeros_like(pts)
                for centre, sigma, move in spec:
                    w = np.exp(-np.sum((pts - centre) ** 2, axis=-1) / (2 * (sigma * iod) ** 2))
                    d += w[..., None] * (np.array(move) * iod)
                return d
            return field

        def lips_parted(a: float):
            """The lips part by `a` IOD: nothing moves above the upper inner lip, everything from the lower
            outer lip down moves down by `a`, smoothstep between (the mouth's own pixels stretch), fading out
            sideways. The exact geometry of a jaw opening, with no new interior drawn."""
            def field(pts: np.ndarray) -> np.ndarray:
                t = np.clip((pts[..., 1] - lip_top) / (lower_lip[1] - lip_top), 0.0, 1.0)
                side = np.exp(-((pts[..., 0] - lower_lip[0]) ** 2) / (2 * (0.6 * iod) ** 2))
                d = np.zeros_like(pts)
                d[..., 1] = a * iod * t * t * (3 - 2 * t) * side
                return d
            return field

        cases = []
        for a in (0.05, 0.10, 0.15):
            cases.append((f"corners apart {a:g} IOD each", bumps((c0, 0.35, (-a, 0.0)), (c1, 0.35, (a, 0.0)))))
        for a in (0.1, 0.15):
            cases.append((f"corners together {a:g} IOD each", bumps((c0, 0.35, (a, 0.0)), (c1, 0.35, (-a, 0.0)))))
        for a in (0.1, 0.2, 0.3):
            cases.append((f"lower face down {a:g} IOD", bumps((chin_side, 0.45, (0.0, a)))))
        for a in (0.05, 0.10):
            cases.append((f"corners up {a:g} IOD", bumps((c0, 0.3, (0.0, -a)), (c1, 0.3, (0.0, -a)))))
        for a in (0.1, 0.15, 0.2, 0.25):
            cases.append((f"lips parted {a:g} IOD", lips_parted(a)))

        size = self.portrait.size
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        grid = np.stack([xs, ys], axis=-1)
        rows = []
        for name, field in cases:
            src = grid.copy()
            for _ in range(30):  # invert x = s + d(s) by fixed point (the fields are gentle: it converges)
                src = grid - field(src)
            img = cv2.remap(self.portrait.image, src[..., 0].astype(np.float32), src[..., 1].astype(np.float32),
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            want_all = field(ref)
            det = self.detect(img)
            if det is None:
                rows.append({"deformation": name, "detected": False})
                continue
            err = self.pct(det - (ref + want_all))
            want, got = want_all[self.region], (det - ref)[self.region]
            rows.append({"deformation": name, "detected": True, "moved_max": float(self.pct(want).max()),
                         "region": float(err[self.region].mean()), "all478": float(err.mean()),
                         "gain": float(np.sum(got * want) / np.sum(want * want))})
        return rows

    # -- 1. fidelity ---------------------------------------------------------------------------
    def fidelity(self, specs, steps: int, n_mixes: int) -> dict:
        per_param = []
        samples = []
        for spec in specs:
            rows = []
            moved = 0.0
            for v in test_values(spec.low, spec.high, steps):
                cmd, image = self.frame(self.MotionParams(**{spec.name: v}))
                moved = max(moved, float(self.pct(cmd - self.rest).max()))
                det = self.detect(image)
                if det is None:
                    rows.append({"value": v, "detected": False})
                    continue
                e = self.errors(cmd, det)
                rows.append({"value": v, "detected": True, **e})
                samples.append((spec.name, v, e["raw"], e["rel"]))
            ok = [r for r in rows if r["detected"]]
            worst = max(ok, key=lambda r: r["raw"]) if ok else None
            entry = {
                "name": spec.name, "group": spec.group, "low": spec.low, "high": spec.high,
                "moved_max_pct": moved, "values": rows,
                "missed_detections": sum(not r["detected"] for r in rows),
                "worst_value": None if worst is None else worst["value"],
                "raw_worst": None if worst is None else worst["raw"],
                "gain_at_worst": None if worst is None else worst["gain"],
                "raw_by_group_at_worst": None if worst is None else worst["raw_by_group"],
                "raw_mean": None if not ok else float(np.mean([r["raw"] for r in ok])),
                "rel_worst": None if not ok else max(r["rel"] for r in ok),
                "all478_rel_worst": None if not ok else max(r["all478"] for r in ok),
                "iris_raw_worst": None if not ok else max(r["iris"] for r in ok),
                "closes_eyes": sorted({eye for r in ok for eye in r["closing_eyes"]}),
            }
            if entry["closes_eyes"]:
                entry["eye_opening"] = self.eye_opening_sweep(spec, steps, entry["closes_eyes"])
            entry["flag"] = (entry["raw_worst"] is None or entry["missed_detections"] > 0
                             or entry["raw_worst"] > FIDELITY_TARGET or entry["rel_worst"] > FIDELITY_TARGET
                             or not all(s["monotonic"] for s in entry.get("eye_opening", [])))
            per_param.append(entry)
        raw = np.array([s[2] for s in samples])
        rel = np.array([s[3] for s in samples])
        mixes = self.mixes(specs, n_mixes)
        return {
            "steps": steps, "params": per_param,
            "overall": {"samples": len(samples), "raw_mean": float(raw.mean()), "raw_max": float(raw.max()),
                        "rel_mean": float(rel.mean()), "rel_max": float(rel.max()),
                        "raw_over_target": int((raw > FIDELITY_TARGET).sum()),
                        "rel_over_target": int((rel > FIDELITY_TARGET).sum())},
            "mixes": mixes,
        }

    def eye_opening_sweep(self, spec, steps: int, eyes: list[str]) -> list[dict]:
        """Commanded and re-detected eye opening from rest to the end of the range that closes the eye."""
        out = []
        ends = [e for e in (spec.low, spec.high) if abs(e) > 1e-9]
        for end in ends:
            vals = [end * k / steps for k in range(steps + 1)]
            cmd_open = {e: [] for e in eyes}
            det_open = {e: [] for e in eyes}
            for v in vals:
                cmd, image = self.frame(self.MotionParams(**{spec.name: v}))
                det = self.detect(image)
                for k, eye in enumerate(self.eyes):
                    if eye["name"] in eyes:
                        cmd_open[eye["name"]].append(100 * self.opening(cmd, eye) / self.iod)
                        det_open[eye["name"]].append(np.nan if det is None else 100 * self.opening(det, eye) / self.iod)
            for eye in eyes:
                c, d = np.array(cmd_open[eye]), np.array(det_open[eye])
                if c[-1] >= CLOSED_EYE_FRACTION * c[0]:
                    continue  # this end of the range does not close this eye
                dc, dd = np.diff(c), np.diff(d)
                # each step: the re-detected opening moves the way the commanded one does, or stays within noise
                good = bool(np.all(np.isfinite(d)) and np.all(dd * np.sign(dc) >= -MONOTONIC_SLACK))
                out.append({"eye": eye, "values": [round(v, 4) for v in vals], "commanded_pct": c.tolist(),
                            "detected_pct": d.tolist(), "monotonic": good,
                            "detected_closed_fraction": float((d[0] - d[-1]) / (c[0] - c[-1])) if c[0] != c[-1] else None})
        return out

    def mixes(self, specs, n: int) -> dict:
        raws, rels, missed = [], [], 0
        for _ in range(n):
            values = {}
            for s in specs:
                values[s.name] = float(self.rng.uniform(s.low, s.high) * 0.4)
            cmd, image = self.frame(self.MotionParams(**values))
            det = self.detect(image)
            if det is None:
                missed += 1
                continue
            e = self.errors(cmd, det)
            raws.append(e["raw"])
            rels.append(e["rel"])
        return {"frames": n, "missed_detections": missed,
                "raw_mean": float(np.mean(raws)) if raws else None, "raw_max": float(np.max(raws)) if raws else None,
                "rel_mean": float(np.mean(rels)) if rels else None, "rel_max": float(np.max(rels)) if rels else None}

    # -- 2. identity ---------------------------------------------------------------------------
    def identity(self) -> dict:
        _, image = self.frame(self.MotionParams())
        value = psnr(image, self.portrait.image)
        diff = np.abs(image.astype(np.int16) - self.portrait.image.astype(np.int16))
        return {"psnr_db": value, "max_abs_diff": int(diff.max()), "changed_pixels": int((diff.max(axis=2) > 0).sum())}

    # -- 3. stability --------------------------------------------------------------------------
    def stability(self, seconds: float, fps: float, seed: int) -> dict:
        from avatar_rt.motion.idle import IdleMotion

        n = int(round(seconds * fps))
        out = {}
        runs = {}
        for sway in (1.0, 0.0):
            idle = IdleMotion(fps, seed=seed, sway=sway)
            cmds, dets, blinks = [], [], []
            for i in range(n):
                params = idle.apply(self.MotionParams(), i, False)
                cmd, image = self.frame(params)
                cmds.append(cmd)
                dets.append(self.detect(image))
                blinks.append(max(params.blink_l, params.blink_r) > BLINK_FRAME)
            runs[sway] = (cmds, dets, blinks)
        for label, sway, skip_blinks in (("sway on, blinks excluded", 1.0, True),
                                         ("sway on, blinks included", 1.0, False),
                                         ("sway off, blinks excluded", 0.0, True)):
            cmds, dets, blinks = runs[sway]
            all_j, reg_j, missed = [], [], sum(d is None for d in dets)
            for t in range(n - 1):
                if dets[t] is None or dets[t + 1] is None:
                    continue
                if skip_blinks and (blinks[t] or blinks[t + 1]):
                    continue
                d = self.pct((dets[t + 1] - dets[t]) - (cmds[t + 1] - cmds[t]))
                all_j.append(float(d.mean()))
                reg_j.append(float(d[self.region].mean()))
            a, r = np.array(all_j), np.array(reg_j)
            cmd_step = [float(self.pct(cmds[t + 1] - cmds[t]).mean()) for t in range(n - 1)]
            out[label] = {
                "sway": sway, "frames": n, "pairs": len(a), "missed_detections": missed,
                "blink_frames": int(sum(blinks)),
                "median": float(np.median(a)) if len(a) else None, "p95": float(np.percentile(a, 95)) if len(a) else None,
                "max": float(a.max()) if len(a) else None,
                "region_median": float(np.median(r)) if len(r) else None,
                "region_p95": float(np.percentile(r, 95)) if len(r) else None,
                "commanded_step_median": float(np.median(cmd_step)),
            }
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--avatar", type=Path, help="portrait photo (default: the bundled one)")
    parser.add_argument("--size", type=int, default=512, help="portrait size in pixels (default 512)")
    parser.add_argument("--steps", type=int, default=8,
                        help="values per parameter: the range split into this many steps, 0 skipped (default 8)")
    parser.add_argument("--mixes", type=int, default=40, help="random all-parameter mixes (default 40)")
    parser.add_argument("--seconds", type=float, default=10.0, help="idle seconds for stability (default 10)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate for stability (default 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.motion.params import PARAMS

    t_start = time.perf_counter()
    avatar = args.avatar or DEFAULT_PORTRAIT
    portrait = load_portrait(avatar, size=args.size)
    q = Quality(portrait, args.seed)
    m = machine()
    result = {"benchmark": "rig_quality", "machine": m, "avatar": str(avatar), "size": portrait.size,
              "iod_px": q.iod, "targets": {"fidelity_pct_iod": FIDELITY_TARGET, "psnr_db": PSNR_TARGET,
                                           "jitter_pct_iod": JITTER_TARGET}}
    print(f"rig quality: {Path(avatar).name}, {portrait.size}x{portrait.size}, IOD {q.iod:.1f} px; "
          f"all errors in % of IOD; MediaPipe Face Mesh re-detection")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date']}, load {m['load_1min']}")

    ctx = q.mediapipe_context()
    result["mediapipe"] = ctx
    print("\n== 0. MediaPipe at rest and its floor (context) ==")
    print(f"rest bias |ref - rest| (MediaPipe on the reference vs the rig's rest pose): mouth+eyes mean "
          f"{ctx['rest_bias_region_mean']:.3f}, max {ctx['rest_bias_region_max']:.3f}; all 478 mean "
          f"{ctx['rest_bias_all_mean']:.3f}")
    if ctx["rest_render_vs_ref_region_mean"] is None:
        print("rest render: MediaPipe finds NO face")
    else:
        print(f"rest render vs reference, re-detected: mouth+eyes mean {ctx['rest_render_vs_ref_region_mean']:.3f}, "
              f"max over 478 {ctx['rest_render_vs_ref_max']:.3f}")
    if ctx["rest_bias_region_max"] < 0.01:
        print("(the rig's rest pose IS MediaPipe's reading of the reference, so raw and rel below coincide)")
    print("floor: the reference moved rigidly by cv2.warpAffine, re-detected vs the exactly moved ref landmarks")
    print(f"  {'transform':<22}{'mouth+eyes':>11}{'all478':>8}{'max':>8}")
    for r in ctx["floor"]:
        if r["detected"]:
            print(f"  {r['transform']:<22}{r['region']:>11.3f}{r['all478']:>8.3f}{r['max']:>8.3f}")
        else:
            print(f"  {r['transform']:<22}  no face detected")
    print("non-rigid floor: the reference deformed by a smooth known field (exact inverse remap), re-detected")
    print(f"  {'deformation':<30}{'moved':>7}{'mouth+eyes':>11}{'all478':>8}{'gain':>6}")
    for r in ctx["nonrigid_floor"]:
        if r["detected"]:
            print(f"  {r['deformation']:<30}{r['moved_max']:>7.2f}{r['region']:>11.3f}{r['all478']:>8.3f}"
                  f"{r['gain']:>6.2f}")
        else:
            print(f"  {r['deformation']:<30}  no face detected")

    fid = q.fidelity(PARAMS, args.steps, args.mixes)
    result["fidelity"] = fid
    print(f"\n== 1. Render fidelity (target <= {FIDELITY_TARGET:g} % IOD, mouth+eye landmarks) ==")
    print("raw = |det - cmd| (the issue's number); rel = |(det - ref) - (cmd - rest)| (MediaPipe rest bias removed)")
    print("moved = largest commanded landmark displacement; all478 = worst rel over all 478 landmarks (context)")
    print("gain = share of the commanded mouth+eye motion the re-detection shows, at the worst value (1 = all)")
    print(f"{'param':<18}{'range':>13}{'moved':>8}{'worst@':>8}{'raw max':>9}{'raw mean':>9}{'rel max':>9}"
          f"{'all478':>8}{'gain':>6}{'iris':>7}  note")
    for p in fid["params"]:
        rng = f"{p['low']:g}..{p['high']:g}"
        notes = []
        if p["moved_max_pct"] < 0.1:
            notes.append("not moved by the rig (vacuous)")
        if p["missed_detections"]:
            notes.append(f"{p['missed_detections']} frames with NO face detected")
        if p["closes_eyes"]:
            notes.append(f"closes {'+'.join(p['closes_eyes'])} eye: contour left out when < half open")
        if p["raw_worst"] is not None and p["raw_worst"] > FIDELITY_TARGET:
            notes.append("RAW > 2%")
        if p["rel_worst"] is not None and p["rel_worst"] > FIDELITY_TARGET:
            notes.append("REL > 2%")
        for s in p.get("eye_opening", []):
            if not s["monotonic"]:
                notes.append(f"{s['eye']} eye opening NOT monotonic")
        flag = "!! " if p["flag"] else ""
        if p["raw_worst"] is None:
            print(f"{p['name']:<18}{rng:>13}{p['moved_max_pct']:>8.2f}   no detections  {flag}{'; '.join(notes)}")
            continue
        gain = "   -  " if p["gain_at_worst"] is None else f"{p['gain_at_worst']:>6.2f}"
        print(f"{p['name']:<18}{rng:>13}{p['moved_max_pct']:>8.2f}{p['worst_value']:>8.3g}{p['raw_worst']:>9.3f}"
              f"{p['raw_mean']:>9.3f}{p['rel_worst']:>9.3f}{p['all478_rel_worst']:>8.3f}{gain}"
              f"{p['iris_raw_worst']:>7.2f}  {flag}{'; '.join(notes)}")
    o = fid["overall"]
    print(f"overall over {o['samples']} (param, value) frames: raw mean {o['raw_mean']:.3f} max {o['raw_max']:.3f} "
          f"({o['raw_over_target']} over target); rel mean {o['rel_mean']:.3f} max {o['rel_max']:.3f} "
          f"({o['rel_over_target']} over target)")
    mx = fid["mixes"]
    if mx["raw_mean"] is not None:
        print(f"random mixes of all {len(PARAMS)} params (each uniform in 40% of its range), {mx['frames']} frames: "
              f"raw mean {mx['raw_mean']:.3f} max {mx['raw_max']:.3f}; rel mean {mx['rel_mean']:.3f} "
              f"max {mx['rel_max']:.3f}; {mx['missed_detections']} missed detections")
    flagged = [p for p in fid["params"] if p["flag"]]
    print(f"flagged: {', '.join(p['name'] for p in flagged) if flagged else 'none'}")
    for p in flagged:
        by = p["raw_by_group_at_worst"] or {}
        over = [v["value"] for v in p["values"] if v["detected"] and v["raw"] > FIDELITY_TARGET]
        print(f"  {p['name']} at {p['worst_value']:g}: raw by group " + ", ".join(f"{k} {v:.2f}" for k, v in by.items())
              + (f"; over target at {', '.join(f'{v:g}' for v in over)}" if over else ""))
    sweeps = [(p["name"], s) for p in fid["params"] for s in p.get("eye_opening", [])]
    if sweeps:
        print("eye opening (centre upper-lid to lower-lid landmark, % IOD), commanded -> re-detected:")
        for name, s in sweeps:
            pairs = " ".join(f"{v:g}:{c:.1f}->{d:.1f}" for v, c, d in
                             zip(s["values"], s["commanded_pct"], s["detected_pct"]))
            frac = s["detected_closed_fraction"]
            follows = "" if frac is None else f"; re-detection follows {100 * frac:.0f}% of the commanded closure"
            print(f"  {name} ({s['eye']}): {pairs}")
            print(f"    monotonic: {'yes' if s['monotonic'] else 'NO'}{follows}")

    ident = q.identity()
    result["identity"] = ident
    print(f"\n== 2. Identity (target >= {PSNR_TARGET:g} dB) ==")
    ok = math.isinf(ident["psnr_db"]) or ident["psnr_db"] >= PSNR_TARGET
    print(f"all params at rest, idle off: PSNR {fmt_db(ident['psnr_db'])}, max |diff| {ident['max_abs_diff']}, "
          f"{ident['changed_pixels']} pixels changed  {'PASS' if ok else 'FAIL'}")
    if math.isinf(ident["psnr_db"]):
        result["identity"]["psnr_db"] = "inf"

    stab = q.stability(args.seconds, args.fps, args.seed)
    result["stability"] = stab
    print(f"\n== 3. Stability (target <= {JITTER_TARGET:g} % IOD), idle without audio, {args.seconds:g} s at "
          f"{args.fps:g} fps ==")
    print("jitter per frame pair = mean over 478 landmarks of |d(det) - d(cmd)|")
    print(f"  {'condition':<28}{'pairs':>6}{'median':>8}{'p95':>8}{'max':>8}{'m+e p95':>9}{'cmd step':>10}")
    for label, s in stab.items():
        if s["median"] is None:
            print(f"  {label:<28}{s['pairs']:>6}   no frame pairs")
            continue
        verdict = "PASS" if s["p95"] <= JITTER_TARGET else "FAIL"
        headline = "  <- headline, p95 " + verdict if label == "sway on, blinks excluded" else ""
        print(f"  {label:<28}{s['pairs']:>6}{s['median']:>8.3f}{s['p95']:>8.3f}{s['max']:>8.3f}"
              f"{s['region_p95']:>9.3f}{s['commanded_step_median']:>10.3f}{headline}")
    print("  (m+e p95 = the same over the mouth+eye landmarks; cmd step = median commanded motion per frame)")
    elapsed = time.perf_counter() - t_start
    result["elapsed_s"] = elapsed
    result["detections"] = {"count": q.n_detect, "mean_ms": 1000 * q.detect_s / max(1, q.n_detect)}
    print(f"\n{q.n_detect} MediaPipe detections, {1000 * q.detect_s / max(1, q.n_detect):.1f} ms each; "
          f"total {elapsed:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Drawn teeth against a donor's, on every test portrait (issue 13: "measure which looks better").

    python benchmarks/mouth_interiors.py [--image docs/images/mouth_interiors.jpg] [--json out.json]

For a photo that shows no teeth, an opening mouth shows either teeth drawn once
per portrait (`procedural`, avatar_rt/render/mouth_synth.py) or the bundled
portrait's own teeth moved and colour-matched onto it (`donor`,
avatar_rt/render/mouth_donor.py). Both are measured on all five portraits with
the photo's own teeth set aside, so the three that have teeth also say how
near each way comes to the person's real mouth. Per way and portrait, over the
open poses of benchmarks/mouth_quality.py (aa, wide jaw, ee, oo, jaw 0.5):

  * flat, energy: mouth_quality's criteria (largest flat part of the interior;
    gradient energy over the bundled photo's teeth, lowest-highest);
  * gap err: MediaPipe re-detects the rendered frame; mean |re-detected −
    commanded| inner-lip gap, % IOD: does a face tracker read the opening the
    rig drew (teeth that read as lips, or a cavity that reads as skin, move it);
  * bright: the interior's 98th-percentile brightest channel over the photo's
    white level (a photo's own teeth render at 0.97-1.0);
  * own diff: where the photo has teeth of its own, mean absolute difference
    (grey levels, BGR) inside the mouth from the render that shows them.
    For the bundled portrait the donor is its own teeth (marked *). Those
    renders (way `own`, what the default shows on these three) are listed too.

The side-by-side image shows, per portrait, a row of each way at the same poses.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mouth_quality as mq  # noqa: E402
from machine import machine  # noqa: E402

from avatar_rt.avatar import landmarks as lm  # noqa: E402
from avatar_rt.render.mouth import DRAWN_TEETH  # noqa: E402
from avatar_rt.render.mouth_synth import white_level  # noqa: E402
from avatar_rt.render.renderer import PortraitRenderer  # noqa: E402
from avatar_rt.rig.landmark_rig import LandmarkRig  # noqa: E402

TILE_W = 200


def _crop(frame: np.ndarray, portrait) -> np.ndarray:
    c = portrait.landmarks[list(lm.MOUTH_CORNERS), :2].mean(axis=0)
    s = 0.9 * portrait.inter_ocular
    x0, y0 = int(round(c[0] - s)), int(round(c[1] - 0.6 * s))
    crop = frame[max(0, y0):y0 + int(1.4 * s), max(0, x0):x0 + int(2 * s)]
    return cv2.resize(crop, (TILE_W, int(TILE_W * 0.7)), interpolation=cv2.INTER_CUBIC)


def measure(name: str, path: Path, ref_energy: float) -> tuple[dict, list[np.ndarray]]:
    portrait = mq.load(path)
    bare = dataclasses.replace(portrait, photo=None, photo_landmarks=None)  # the photo's own teeth set aside
    rig = LandmarkRig(portrait)
    iod = portrait.inter_ocular
    white = white_level(portrait.image, portrait.landmarks[:, :2])
    poses = {k: rig.pose(p) for k, p in mq.OPEN_POSES.items()}
    own = ({k: PortraitRenderer(portrait).render(pose) for k, pose in poses.items()}
           if portrait.photo is not None else None)
    out, rows = {}, []
    ways = DRAWN_TEETH + (("own",) if own is not None else ())
    for way in ways:
        renderer = None if way == "own" else PortraitRenderer(bare, drawn_teeth=way)
        flat, energy, gap_err, bright, diff, tiles = [], [], [], [], [], []
        for k, pose in poses.items():
            frame = own[k] if renderer is None else renderer.render(pose)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
            mask = mq._interior_mask(pose.points, gray.shape)
            flat.append(mq.flat_share(gray, mask, mq._mouth_area(pose.points)))
            energy.append(mq.gradient_energy(gray, mask) / ref_energy)
            gap_err.append(abs(mq.redetect_gap(frame, iod) - mq.inner_gap(pose.points) / iod))
            bright.append(float(np.percentile(frame[mask].max(axis=1), 98)) / white)
            if own is not None and way != "own":
                diff.append(float(np.abs(frame[mask].astype(np.float32) - own[k][mask].astype(np.float32)).mean()))
            tiles.append(_crop(frame, portrait))
        out[way] = {"flat_max": max(flat), "energy_min": min(energy), "energy_max": max(energy),
                    "gap_err_iod": float(np.nanmean(gap_err)), "bright_p98_of_white": float(np.mean(bright)),
                    "own_diff": float(np.mean(diff)) if diff else None,
                    "donor_is_own": bool(way == "donor" and path == mq.DEFAULT_PORTRAIT)}
        if way != "own":
            rows.append(np.hstack(tiles))
    return out, rows


def _label(row: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, row.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, row])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, help="write the side-by-side picture here (JPEG)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    ref = mq.teeth_energy_reference()
    m = machine()
    result = {"benchmark": "mouth_interiors", "machine": m, "poses": list(mq.OPEN_POSES), "portraits": {}}
    pictures = []
    for name, path in mq.portraits().items():
        result["portraits"][name], rows = measure(name, path, ref)
        for way, row in zip(DRAWN_TEETH, rows):
            pictures.append(_label(row, f"{name}: {way}   ({', '.join(mq.OPEN_POSES)})"))
        print(f"... {name} done", file=sys.stderr, flush=True)
    print("mouth interiors: drawn teeth (procedural) vs the bundled portrait's (donor), photo's own teeth set aside")
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['date']}")
    print(f"{'portrait':<16}{'way':<12}{'flat max':>9}{'energy':>12}{'gap err':>9}{'bright':>8}{'own diff':>9}")
    for name, ways in result["portraits"].items():
        for way, r in ways.items():
            own = "-" if way == "own" or r["own_diff"] is None else f"{r['own_diff']:.1f}{'*' if r['donor_is_own'] else ''}"
            print(f"{name:<16}{way:<12}{r['flat_max']:>9.2%}{r['energy_min']:>6.2f}-{r['energy_max']:.2f}"
                  f"{100 * r['gap_err_iod']:>8.2f}%{r['bright_p98_of_white']:>8.2f}{own:>9}")
    for way in DRAWN_TEETH:
        rs = [r[way] for r in result["portraits"].values()]
        diffs = [r["own_diff"] for r in rs if r["own_diff"] is not None and not r["donor_is_own"]]
        print(f"{way:<12} worst flat {max(r['flat_max'] for r in rs):.2%}, energy "
              f"{min(r['energy_min'] for r in rs):.2f}-{max(r['energy_max'] for r in rs):.2f}, mean gap err "
              f"{100 * np.mean([r['gap_err_iod'] for r in rs]):.2f} % IOD, own diff (obama, obama_speaking) "
              f"{np.mean(diffs):.1f}; energy {mq.ENERGY_RANGE[0]}-{mq.ENERGY_RANGE[1]} on every portrait: "
              f"{'yes' if all(mq.ENERGY_RANGE[0] <= r['energy_min'] and r['energy_max'] <= mq.ENERGY_RANGE[1] for r in rs) else 'NO'}")
    if a.image:
        w = max(p.shape[1] for p in pictures)
        sheet = np.vstack([np.pad(p, ((0, 4), (0, w - p.shape[1]), (0, 0)), constant_values=255) for p in pictures])
        a.image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(a.image), sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if a.json:
        a.json.write_text(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

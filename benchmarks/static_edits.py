"""Static edits cost nothing per frame: render time with and without them, interleaved.

Bakes the bundled portrait with every geometric attribute and appearance edit,
then times rig + render for the same motion trajectory on the plain and the
baked portrait, alternating frame by frame so machine noise hits both alike.

    python benchmarks/static_edits.py [--frames 600]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from machine import machine  # benchmarks/machine.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.edits.attributes import GEOMETRIC, bake_static
    from avatar_rt.motion.params import MotionParams
    from avatar_rt.render.renderer import PortraitRenderer
    from avatar_rt.rig.landmark_rig import LandmarkRig

    plain = load_portrait(DEFAULT_PORTRAIT)
    t0 = time.perf_counter()
    baked = bake_static(plain, {name: 0.5 for name in GEOMETRIC},
                        {"lip_colour": {"rgb": [190, 30, 70], "strength": 0.6}, "blush": 0.5,
                         "iris_colour": {"rgb": [40, 120, 200], "strength": 0.6},
                         "skin_tone": {"rgb": [150, 100, 80], "strength": 0.3},
                         "hair_colour": {"rgb": [120, 60, 30], "strength": 0.5}})
    bake_ms = (time.perf_counter() - t0) * 1000
    setups = {name: (LandmarkRig(p), PortraitRenderer(p)) for name, p in (("plain", plain), ("baked", baked))}
    rng = np.random.default_rng(0)
    times = {name: [] for name in setups}
    for i in range(args.frames):
        params = MotionParams(jaw_open=float(abs(np.sin(i / 3))), head_yaw=0.05 * np.sin(i / 20),
                              head_roll=0.03 * np.sin(i / 31), blink_l=float(i % 90 < 4), blink_r=float(i % 90 < 4),
                              brow_raise_l=0.2 * float(rng.random()))
        for name, (rig, renderer) in setups.items():
            start = time.perf_counter()
            renderer.render(rig.pose(params))
            times[name].append(time.perf_counter() - start)
    m = machine()
    print(f"static edits: every attribute at 0.5 and every appearance edit, {args.frames} frames each, one thread")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date']}, load {m['load_1min']}; "
          f"bake took {bake_ms:.0f} ms once")
    med = {k: float(np.median(v)) * 1000 for k, v in times.items()}
    p99 = {k: float(np.percentile(v, 99)) * 1000 for k, v in times.items()}
    for name in setups:
        print(f"{name:<6} rig+render median {med[name]:.2f} ms, p99 {p99[name]:.2f} ms")
    print(f"ratio baked/plain (median): {med['baked'] / med['plain']:.3f}")


if __name__ == "__main__":
    main()

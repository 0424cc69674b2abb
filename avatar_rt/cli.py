"""`avatar-rt`: serve the engine over WebRTC, render a WAV to an MP4 offline, benchmark a server, or build
TensorRT engines."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT
from avatar_rt.bench.command import add_parser as add_bench_parser
from avatar_rt.engines.command import add_backend_argument
from avatar_rt.engines.command import add_parser as add_engines_parser
from avatar_rt.motion.factory import BEHAVIOUR_KINDS
from avatar_rt.server import flags as server_flags


def _positive_fps(text: str) -> float:
    fps = float(text)
    if not 5 <= fps <= 60:
        raise argparse.ArgumentTypeError("fps must be between 5 and 60")
    return fps


def _size(text: str) -> int:
    size = int(text)
    if size % 16 or not 128 <= size <= 1024:
        raise argparse.ArgumentTypeError("size must be a multiple of 16 between 128 and 1024")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar-rt", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the web client and the WebRTC session API")
    serve.add_argument("--avatar", type=Path, default=DEFAULT_PORTRAIT,
                       help="portrait image for sessions that do not upload one (default: the bundled astronaut)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080)")
    serve.add_argument("--fps", type=_positive_fps, default=25.0, help="output frame rate (default: 25)")
    serve.add_argument("--size", type=_size, default=512, help="output width and height in pixels (default: 512)")
    serve.add_argument("--max-sessions", type=int, default=4,
                       help="concurrent sessions before new ones are refused with 503 (default: 4)")
    serve.add_argument("--motion", choices=("auto", "lipsync", "loudness"), default="auto",
                       help="what drives the mouth: the trained lip-sync model, the loudness jaw, or auto "
                            "(the model when engines/ has it; default)")
    serve.add_argument("--behaviour", choices=BEHAVIOUR_KINDS, default="auto",
                       help="what drives head turns, brow raises and blinks with the lip-sync model: model (stage B, "
                            "the 2-step student), teacher (its many-step teacher, slower), idle (procedural sway and "
                            "blinks), or auto (model when engines/ has it; default)")
    serve.add_argument("--db", type=Path, default=None,
                       help="SQLite file for uploaded avatars, their edits, edit history and presets "
                            "(default: $XDG_DATA_HOME/avatar_rt/avatar_rt.sqlite3)")
    add_backend_argument(serve)
    serve.add_argument("--frame-clock", choices=("free", "audio"), default="free",
                       help="free: each session's 25 fps clock ticks on its own (default); audio: its phase follows "
                            "the received audio, so a frame is made as soon as its audio is in (about 25 ms less "
                            "server latency on a clean path; docs/latency.md), but the returned voice's delay then "
                            "moves with the clock (up to 30 ms at a time) and co-phased sessions queue together")
    server_flags.add_arguments(serve)

    render = sub.add_parser(
        "render", help="render an audio file spoken by a portrait to an MP4, or a contact sheet of its motions",
        description="Render --audio spoken by the portrait to the MP4 -o; or, with --contact-sheet, write a PNG "
                    "grid of the portrait in labelled poses (rest, jaw, lips, blink, head pose, brows, gaze).")
    render.add_argument("--avatar", type=Path, action="append",
                        help="portrait image (default: the bundled astronaut); --sheet mouth takes several, one row "
                             "each")
    render.add_argument("--mouth-rest", choices=("closed", "photo"), default="closed",
                        help="closed: parted lips in the photo are closed for the rest pose (default); photo: keep "
                             "the photo's own expression")
    render.add_argument("--audio", type=Path,
                        help="speech audio (WAV or anything FFmpeg reads); required unless --contact-sheet")
    render.add_argument("-o", "--output", type=Path, help="output MP4 path; required unless --contact-sheet")
    render.add_argument("--contact-sheet", type=Path, metavar="OUT.png",
                        help="write a PNG grid of labelled frames (one per motion setting) instead of a video")
    render.add_argument("--motion", choices=("auto", "lipsync", "loudness"), default="auto",
                        help="what drives the mouth (as for serve; default auto)")
    render.add_argument("--behaviour", choices=BEHAVIOUR_KINDS, default="auto",
                        help="what drives head, brows and blinks (as for serve; default auto)")
    render.add_argument("--sheet", choices=("rig", "emotions", "mouth"), default="rig",
                        help="with --contact-sheet: the rig's poses (default), the emotions, or the mouth gallery "
                             "(close-ups of rest, closure, ee, oo, aa and a wide jaw, one row per --avatar)")
    render.add_argument("--fps", type=_positive_fps, default=25.0, help="frame rate (default: 25)")
    render.add_argument("--size", type=_size, default=512, help="width and height in pixels (default: 512)")
    render.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    add_backend_argument(render)
    render.set_defaults(usage_error=render.error)
    add_bench_parser(sub)
    add_engines_parser(sub)
    return parser


def _check_render_args(args: argparse.Namespace) -> None:
    """--audio and -o go together, unless --contact-sheet is asked for instead (argparse usage errors, status 2)."""
    args.avatars = args.avatar or [DEFAULT_PORTRAIT]
    args.avatar = args.avatars[0]
    if len(args.avatars) > 1 and not (args.contact_sheet is not None and args.sheet == "mouth"):
        args.usage_error("several --avatar go with --contact-sheet OUT.png --sheet mouth only")
    if args.contact_sheet is not None:
        if args.audio is not None or args.output is not None:
            args.usage_error("--contact-sheet writes a still image: it takes no --audio or -o/--output")
        if args.contact_sheet.suffix.lower() != ".png":
            args.usage_error(f"--contact-sheet writes a PNG: name it *.png (got {args.contact_sheet})")
        return
    missing = [flag for flag, value in (("--audio", args.audio), ("-o/--output", args.output)) if value is None]
    if missing:
        args.usage_error(f"the following arguments are required: {', '.join(missing)} "
                         "(or --contact-sheet OUT.png for a still contact sheet)")


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from avatar_rt.server.app import ServerConfig, create_app

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        logging.getLogger(__name__).info("uvloop not available; using the default asyncio loop")
    if not args.avatar.is_file():
        print(f"avatar-rt: no such portrait: {args.avatar}", file=sys.stderr)
        return 2
    _open_models(args)
    from avatar_rt.server import session as session_module  # noqa: PLC0415

    session_module.FRAME_CLOCK = args.frame_clock
    limits, auth, generated = server_flags.from_args(args)
    config = ServerConfig(avatar=args.avatar, fps=args.fps, size=args.size, max_sessions=args.max_sessions,
                          db=args.db, motion=args.motion, behaviour=args.behaviour, limits=limits, auth=auth)
    app = create_app(config)  # opens (and checks) the database first: a damaged one is reported, not served
    page = f"http://{args.host}:{args.port}/"
    if generated:
        print(f"avatar-rt: listening beyond loopback, so every API call needs a token; this run's token is "
              f"{auth.token} (choose one with --token or ${server_flags.TOKEN_ENV})", flush=True)
    if auth.required:
        page += f"?token={auth.token}"
    print(f"avatar-rt: serving on {page} (open it in a browser)", flush=True)
    # aiohttp arms its keep-alive timer when a connection opens and after each answer, and does not re-arm it
    # while headers trickle in: it is the header-read timeout that cuts slow-loris clients off.
    web.run_app(app, host=args.host, port=args.port, print=None, keepalive_timeout=limits.header_timeout_s)
    return 0


def _open_models(args: argparse.Namespace) -> None:
    """Choose the backend (logging why) and open the models this run will use on it: a backend that cannot run
    here, or a missing or corrupt model, stops the start with a message naming it (AvatarRtError / EngineError)."""
    from avatar_rt import engines
    from avatar_rt.motion.factory import check_models

    backend = engines.use(args.backend)
    used = check_models(args.motion, args.behaviour)
    if backend.name != "cpu":  # the renderer runs the warp graph there (avatar_rt/render/renderer.py)
        from avatar_rt.render.warp_onnx import ENGINE_NAME as WARP

        engines.open_model(engines.engine_path(WARP), "warp model")
        used.append(WARP)
    logging.getLogger(__name__).info("models on backend %s: %s", backend.name, ", ".join(used) or
                                     "none (loudness jaw)")


def _render(args: argparse.Namespace) -> int:
    for avatar in args.avatars:
        if not avatar.is_file():
            print(f"avatar-rt: no such portrait: {avatar}", file=sys.stderr)
            return 2
    if args.contact_sheet is not None:
        return _contact_sheet(args)

    from tqdm import tqdm

    from avatar_rt.avatar.reference import load_portrait
    from avatar_rt.offline import decode_audio, render_to_mp4

    audio = decode_audio(args.audio)  # before the models and the slow portrait analysis: bad audio fails fast
    _open_models(args)
    portrait = load_portrait(args.avatar, size=args.size, mouth_rest=args.mouth_rest)
    bar = tqdm(unit="frame", desc="rendering", disable=args.no_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    frames = render_to_mp4(portrait, audio, args.output, fps=args.fps, progress=progress, motion=args.motion,
                           behaviour=args.behaviour)
    bar.close()
    print(f"wrote {args.output} ({frames} frames at {args.fps:g} fps)")
    return 0


def _contact_sheet(args: argparse.Namespace) -> int:
    from avatar_rt.avatar.reference import load_portrait
    from avatar_rt.contact_sheet import SHEETS, mouth_sheet, write_contact_sheet, write_png

    if not args.contact_sheet.parent.is_dir():  # before the slow analysis
        print(f"avatar-rt: cannot write {args.contact_sheet}: no such directory", file=sys.stderr)
        return 2
    if args.sheet == "mouth":
        portraits = [load_portrait(a, size=args.size, mouth_rest=args.mouth_rest) for a in args.avatars]
        sheet = mouth_sheet(portraits, SHEETS["mouth"]())
        write_png(sheet, args.contact_sheet)
        print(f"wrote {args.contact_sheet} ({len(portraits)} portraits × {len(SHEETS['mouth']())} mouth poses, "
              f"{sheet.shape[1]}×{sheet.shape[0]})")
        return 0
    portrait = load_portrait(args.avatar, size=args.size, mouth_rest=args.mouth_rest)
    cases = SHEETS[args.sheet]()
    sheet = write_contact_sheet(portrait, args.contact_sheet, cases)
    print(f"wrote {args.contact_sheet} ({len(cases)} frames, {sheet.shape[1]}×{sheet.shape[0]})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "render":
        _check_render_args(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from avatar_rt.errors import AvatarRtError

    if args.command == "bench":
        from avatar_rt.bench.command import run as run_bench

        return run_bench(args)
    if args.command == "engines":
        from avatar_rt.engines.command import run as run_engines

        return run_engines(args)
    from avatar_rt.engines import EngineError

    try:
        return _serve(args) if args.command == "serve" else _render(args)
    except AvatarRtError as exc:
        print(f"avatar-rt: {exc.message}", file=sys.stderr)
        return 2
    except EngineError as exc:  # a backend that cannot run here, a model that cannot be loaded
        print(f"avatar-rt: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

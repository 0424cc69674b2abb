"""`avatar-rt`: serve the engine over WebRTC, or render a WAV to an MP4 offline."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT


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

    render = sub.add_parser("render", help="render an audio file spoken by a portrait to an MP4")
    render.add_argument("--avatar", type=Path, default=DEFAULT_PORTRAIT,
                        help="portrait image (default: the bundled astronaut)")
    render.add_argument("--audio", type=Path, required=True, help="speech audio (WAV or anything FFmpeg reads)")
    render.add_argument("-o", "--output", type=Path, required=True, help="output MP4 path")
    render.add_argument("--fps", type=_positive_fps, default=25.0, help="frame rate (default: 25)")
    render.add_argument("--size", type=_size, default=512, help="width and height in pixels (default: 512)")
    render.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    return parser


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
    config = ServerConfig(avatar=args.avatar, fps=args.fps, size=args.size, max_sessions=args.max_sessions)
    print(f"avatar-rt: serving on http://{args.host}:{args.port}/ (open it in a browser)", flush=True)
    web.run_app(create_app(config), host=args.host, port=args.port, print=None)
    return 0


def _render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from avatar_rt.avatar.reference import load_portrait
    from avatar_rt.offline import decode_audio, render_to_mp4

    if not args.avatar.is_file():
        print(f"avatar-rt: no such portrait: {args.avatar}", file=sys.stderr)
        return 2
    audio = decode_audio(args.audio)  # before the slow portrait analysis: bad audio fails fast
    portrait = load_portrait(args.avatar, size=args.size)
    bar = tqdm(unit="frame", desc="rendering", disable=args.no_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    frames = render_to_mp4(portrait, audio, args.output, fps=args.fps, progress=progress)
    bar.close()
    print(f"wrote {args.output} ({frames} frames at {args.fps:g} fps)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from avatar_rt.errors import AvatarRtError

    try:
        return _serve(args) if args.command == "serve" else _render(args)
    except AvatarRtError as exc:
        print(f"avatar-rt: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

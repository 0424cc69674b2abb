"""`avatar-rt serve` flags for the limits and the token (README "Security and limits")."""

from __future__ import annotations

import argparse
import os

from avatar_rt.server.auth import TOKEN_ENV, Auth
from avatar_rt.server.limits import Limits


def _rate(text: str) -> tuple[float, float]:
    try:
        rate, burst = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RATE,BURST (per second, e.g. 0.5,10), got {text!r}") from None
    if rate < 0 or burst < 1:
        raise argparse.ArgumentTypeError("RATE must be ≥ 0 (0: unlimited) and BURST ≥ 1")
    return rate, burst


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_arguments(serve: argparse.ArgumentParser) -> None:
    d = Limits()
    g = serve.add_argument_group("security and limits")
    g.add_argument("--token", default=None,
                   help=f"bearer token every /v1/ call must carry (default: ${TOKEN_ENV}; a server listening beyond "
                        "loopback without one makes one and prints it)")
    g.add_argument("--pending-per-client", type=int, default=d.pending_per_client,
                   help="sessions a client may hold created but not yet offered; its oldest is reclaimed past this "
                        f"(default: {d.pending_per_client})")
    g.add_argument("--pending-total", type=int, default=d.pending_total,
                   help=f"un-offered sessions in all (default: {d.pending_total})")
    g.add_argument("--pending-ttl", type=_positive, default=d.pending_ttl_s, metavar="SECONDS",
                   help=f"an un-offered session is reclaimed after this long (default: {d.pending_ttl_s:g})")
    g.add_argument("--connect-timeout", type=_positive, default=d.connect_timeout_s, metavar="SECONDS",
                   help="an offered session whose WebRTC connection has not completed by then is reclaimed "
                        f"(default: {d.connect_timeout_s:g})")
    g.add_argument("--consent-timeout", type=_positive, default=d.consent_timeout_s, metavar="SECONDS",
                   help="a connected client that stops answering ICE consent checks this long is gone and its "
                        f"session closed (default: {d.consent_timeout_s:g})")
    g.add_argument("--header-timeout", type=_positive, default=d.header_timeout_s, metavar="SECONDS",
                   help="a connection must send a whole request line and headers within this long of opening (or of "
                        "its previous answer), else it is closed: slow-loris clients trickling headers hold nothing "
                        f"for long; idle keep-alive connections close then too (default: {d.header_timeout_s:g})")
    for flag, attr, what in (("--rate-sessions", "session_rate", "session creations per client"),
                             ("--rate-edits", "edit_rate", "edit calls per client over HTTP, and edit messages per "
                                                           "session on its control channel (refused there with a "
                                                           "rate_limited error message)"),
                             ("--rate-uploads", "upload_rate", "avatar uploads per client")):
        rate, burst = getattr(d, attr)
        g.add_argument(flag, type=_rate, default=(rate, burst), metavar="RATE,BURST",
                       help=f"{what}: RATE a second after a burst of BURST; more get 429 with "
                            f"Retry-After; 0,1 turns it off (default: {rate:g},{burst:g})")
    g.add_argument("--max-upload-mb", type=_positive, default=d.max_upload_bytes / 2**20,
                   help=f"largest avatar upload in MiB; larger gets 413 (default: {d.max_upload_bytes // 2**20})")


def from_args(args: argparse.Namespace) -> tuple[Limits, Auth, bool]:
    """The limits, the auth, and whether the token was generated here (the caller prints it)."""
    limits = Limits(max_sessions=args.max_sessions, pending_per_client=args.pending_per_client,
                    pending_total=args.pending_total, pending_ttl_s=args.pending_ttl,
                    connect_timeout_s=args.connect_timeout, consent_timeout_s=args.consent_timeout,
                    header_timeout_s=args.header_timeout,
                    session_rate=args.rate_sessions, edit_rate=args.rate_edits, upload_rate=args.rate_uploads,
                    max_upload_bytes=int(args.max_upload_mb * 2**20))
    auth, generated = Auth.for_host(args.host, args.token or os.environ.get(TOKEN_ENV) or None)
    return limits, auth, generated

"""A scripted customer-service agent with a face: type a question, the avatar answers it aloud.

    python examples/customer_service_agent.py            # starts a server, prints the page to open
    python examples/customer_service_agent.py --url http://127.0.0.1:8080   # an already running server

The "LLM" is a keyword script (no model, no network); the voice is espeak-ng; the face is
avatar_rt, driven through `avatar_rt.client`. Each reply carries an emotion, applied with
the edit API's `at` so it lands on the reply's first frame. While it speaks, typing a new
question interrupts it (barge-in: `clear`), exactly as a voice agent cuts the avatar off
when the customer talks over it. Between replies the face listens; while it "thinks"
(synthesizing) it looks away.

Non-interactive (for tests and demos): --ask "question" (repeatable) plays the questions
in order; --interrupt-after S interrupts each reply after S seconds with the next one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from avatar_rt.client import AgentConnection, AvatarClient, PlaybackFinished  # noqa: E402


@dataclass(frozen=True)
class Reply:
    keywords: tuple[str, ...]
    text: str
    emotion: dict[str, float]


SCRIPT = (
    Reply(("hello", "hi", "hey"), "Hello! Thanks for calling Orbit Outfitters. How can I help you today?",
          {"happy": 0.6}),
    Reply(("order", "package", "delivery", "shipped", "where"),
          "Let me check. Your order shipped yesterday and should arrive on Tuesday. "
          "I can email you the tracking number if you like.", {"happy": 0.3}),
    Reply(("refund", "return", "broken", "damaged"),
          "I'm sorry to hear that. I can start a return for you right now, and the refund "
          "reaches your card within five working days.", {"sad": 0.5}),
    Reply(("angry", "terrible", "worst", "complaint"),
          "I understand, and I'm sorry we let you down. I'll pass this on to my manager today.",
          {"sad": 0.4, "surprised": 0.1}),
    Reply(("thanks", "thank", "bye", "goodbye"), "You're welcome! Have a wonderful day.", {"happy": 0.8}),
)
FALLBACK = Reply((), "I'm not sure I understood. You can ask me about an order, a return, or a refund.",
                 {"neutral": 1.0})


def answer_for(question: str) -> Reply:
    words = question.lower()
    return next((r for r in SCRIPT if any(k in words for k in r.keywords)), FALLBACK)


def speak(text: str) -> tuple[np.ndarray, int]:
    """espeak-ng → PCM16 mono at its own rate (22.05 kHz); the server resamples."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "reply.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy(), w.getframerate()


class Agent:
    def __init__(self, client: AvatarClient, session_id: str, agent: AgentConnection):
        self.client, self.session_id, self.agent = client, session_id, agent
        self.speaking: str | None = None  # the segment now queued or playing

    async def answer(self, question: str) -> str:
        if self.speaking is not None:  # the customer talks over the avatar: cut it off at once
            await self.agent.clear()
        reply = answer_for(question)
        await self.agent.set_state("thinking")  # the face looks away while the reply is synthesized
        pcm, _rate = await asyncio.to_thread(speak, reply.text)
        # The emotion lands on the reply's first frame: `at` = the media time its audio will start.
        starts_at = (await self.agent.describe())["queue_ends_at_s"]
        await self.agent.edit({"set": {"emotion": reply.emotion}, "at": starts_at, "transition_ms": 400})
        self.speaking = await self.agent.say(pcm, text=reply.text)
        print(f"  avatar: {reply.text}", flush=True)
        return self.speaking

    async def watch(self) -> None:
        """Events: back to listening when a reply has played (the history stays true: we know what was said)."""
        async for event in self.agent.events():
            if isinstance(event, PlaybackFinished):
                cut = f" (interrupted at {event.position_s:.1f} s)" if event.interrupted else ""
                print(f"  [reply {event.id} finished{cut}]", flush=True)
                if event.id == self.speaking:
                    self.speaking = None
                    await self.agent.set_state("listening")


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "avatar_rt", "serve", "--port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1):
                return proc
        if proc.poll() is not None:
            raise SystemExit("the server did not start; run `python -m avatar_rt serve` to see why")
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not become healthy in 90 s")


async def read_lines(queue: asyncio.Queue) -> None:
    loop = asyncio.get_running_loop()
    while (line := await loop.run_in_executor(None, sys.stdin.readline)):
        await queue.put(line.strip())
    await queue.put(None)


async def main_async(args) -> int:
    async with AvatarClient(args.url) as client:
        session = await client.create_session()
        async with await client.connect_agent(session.session_id, sample_rate=22050) as conn:
            agent = Agent(client, session.session_id, conn)
            watcher = asyncio.create_task(agent.watch())
            await conn.set_state("listening")
            print(f"Open {client.watch_url(session)} and press Start to see and hear the agent.", flush=True)
            if args.ask:
                for i, question in enumerate(args.ask):
                    print(f"customer: {question}", flush=True)
                    segment = await agent.answer(question)
                    if args.interrupt_after is not None and i < len(args.ask) - 1:
                        await asyncio.sleep(args.interrupt_after)
                    else:
                        await conn.wait_finished(segment, timeout=120)
                await asyncio.sleep(0.5)
            else:
                print("Type a question and press Enter (Ctrl-D to quit); typing while it talks interrupts it.")
                lines: asyncio.Queue = asyncio.Queue()
                reader = asyncio.create_task(read_lines(lines))
                while (question := await lines.get()) is not None:
                    if question:
                        await agent.answer(question)
                reader.cancel()
            watcher.cancel()
        with contextlib.suppress(Exception):
            await client.delete_session(session.session_id)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running avatar_rt server (default: start one on a free port)")
    parser.add_argument("--port", type=int, default=0, help="port for the server this script starts (default: free)")
    parser.add_argument("--ask", action="append", help="a question to answer non-interactively (repeatable)")
    parser.add_argument("--interrupt-after", type=float, help="with --ask: interrupt each reply after this many s")
    args = parser.parse_args()
    server = None
    if args.url is None:
        port = args.port
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        print(f"starting avatar_rt on port {port} …", flush=True)
        server = start_server(port)
        args.url = f"http://127.0.0.1:{port}"
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())

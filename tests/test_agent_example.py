"""The customer-service example runs end to end against a real server: answers, barge-in, clean exit."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def test_the_example_agent_answers_and_can_be_interrupted(server):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the README test command installs it)")
    run = subprocess.run(
        [sys.executable, "examples/customer_service_agent.py", "--url", server.base_url,
         "--ask", "where is my order", "--interrupt-after", "1.0", "--ask", "I want a refund"],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Your order shipped yesterday" in out and "start a return" in out
    finished = re.findall(r"\[reply (\w+) finished(?: \(interrupted at ([\d.]+) s\))?\]", out)
    assert len(finished) == 2, out
    (first, cut_at), (second, not_cut) = finished
    assert 0.6 <= float(cut_at) <= 1.2 and not_cut == "", out  # the first was cut off, the second played out
    assert "/?session=" in out

"""Persistence in SQLite (WAL): avatar images, each avatar's current edits and their history, presets.

Every write is committed before the caller acknowledges the edit, so a restart —
or a `kill -9` right after the acknowledgement — loses nothing acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from avatar_rt.edits.schema import EditState

SCHEMA = """
CREATE TABLE IF NOT EXISTS avatars (
    avatar_id TEXT PRIMARY KEY,
    image BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS analyses (
    avatar_id TEXT PRIMARY KEY,
    portrait_png BLOB NOT NULL,
    landmarks BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS edits (
    avatar_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    avatar_id TEXT NOT NULL,
    previous TEXT NOT NULL,
    request TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_avatar ON history (avatar_id, seq);
CREATE TABLE IF NOT EXISTS presets (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL
);
"""
MAX_HISTORY = 200  # per avatar; older entries are dropped (undo reaches this far back)


class EditStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used under a lock: the event loop and worker threads may both call in.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # An fsync per commit: an acknowledged edit survives kill -9 and power loss
            # alike. Edits are rare, so the cost does not matter.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- avatars ---------------------------------------------------------
    def save_avatar(self, avatar_id: str, image: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO avatars VALUES (?, ?, ?)", (avatar_id, image, time.time()))

    def avatar_image(self, avatar_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT image FROM avatars WHERE avatar_id = ?", (avatar_id,)).fetchone()
        return row[0] if row else None

    def save_analysis(self, avatar_id: str, portrait_png: bytes, landmarks: bytes) -> None:
        """The prepared portrait (crop + landmarks), so a restart need not run the face mesh again."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?)",
                             (avatar_id, portrait_png, landmarks, time.time()))

    def analysis(self, avatar_id: str) -> tuple[bytes, bytes] | None:
        with self._lock:
            row = self._db.execute("SELECT portrait_png, landmarks FROM analyses WHERE avatar_id = ?",
                                   (avatar_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def has_avatar(self, avatar_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM avatars WHERE avatar_id = ?", (avatar_id,)).fetchone() is not None

    def avatar_rows(self, suffix: str = "") -> list[tuple[str, float]]:
        """(avatar_id, uploaded at) of every stored avatar whose id ends with `suffix`, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT avatar_id, created FROM avatars ORDER BY created DESC, avatar_id").fetchall()
        return [(r[0], float(r[1])) for r in rows if r[0].endswith(suffix)]

    def delete_avatar(self, avatar_id: str) -> bool:
        """The avatar, its analysis, its edits and their history, in one transaction; False if it was not stored."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                found = cur.execute("DELETE FROM avatars WHERE avatar_id = ?", (avatar_id,)).rowcount > 0
                for table in ("analyses", "edits", "history"):
                    cur.execute(f"DELETE FROM {table} WHERE avatar_id = ?", (avatar_id,))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return found

    # --- edits -----------------------------------------------------------
    def load(self, avatar_id: str) -> tuple[EditState, int]:
        with self._lock:
            row = self._db.execute("SELECT state, version FROM edits WHERE avatar_id = ?", (avatar_id,)).fetchone()
        if row is None:
            return EditState(), 0
        return EditState.from_json(json.loads(row[0])), int(row[1])

    def commit(self, avatar_id: str, previous: EditState, state: EditState, request: dict) -> int:
        """Store the new state and its history entry in one transaction; returns the new version."""
        now = time.time()
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT version FROM edits WHERE avatar_id = ?", (avatar_id,)).fetchone()
                version = (int(row[0]) if row else 0) + 1
                cur.execute("INSERT OR REPLACE INTO edits VALUES (?, ?, ?, ?)",
                            (avatar_id, json.dumps(state.to_json()), version, now))
                cur.execute("INSERT INTO history (avatar_id, previous, request, created) VALUES (?, ?, ?, ?)",
                            (avatar_id, json.dumps(previous.to_json()), json.dumps(request), now))
                cur.execute("DELETE FROM history WHERE avatar_id = ? AND seq NOT IN "
                            "(SELECT seq FROM history WHERE avatar_id = ? ORDER BY seq DESC LIMIT ?)",
                            (avatar_id, avatar_id, MAX_HISTORY))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return version

    def undo(self, avatar_id: str) -> tuple[EditState, int] | None:
        """Restore the state before the latest edit; None if there is nothing to undo."""
        now = time.time()
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute("SELECT seq, previous FROM history WHERE avatar_id = ? ORDER BY seq DESC LIMIT 1",
                                  (avatar_id,)).fetchone()
                if row is None:
                    cur.execute("COMMIT")
                    return None
                seq, previous = row
                version_row = cur.execute("SELECT version FROM edits WHERE avatar_id = ?", (avatar_id,)).fetchone()
                version = (int(version_row[0]) if version_row else 0) + 1
                cur.execute("INSERT OR REPLACE INTO edits VALUES (?, ?, ?, ?)", (avatar_id, previous, version, now))
                cur.execute("DELETE FROM history WHERE seq = ?", (seq,))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return EditState.from_json(json.loads(previous)), version

    def history_length(self, avatar_id: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM history WHERE avatar_id = ?",
                                        (avatar_id,)).fetchone()[0])

    # --- presets ---------------------------------------------------------
    def save_preset(self, name: str, state: EditState) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO presets VALUES (?, ?, ?)",
                             (name, json.dumps(state.to_json()), time.time()))

    def preset(self, name: str) -> EditState | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM presets WHERE name = ?", (name,)).fetchone()
        return EditState.from_json(json.loads(row[0])) if row else None

    def preset_names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM presets ORDER BY name")]

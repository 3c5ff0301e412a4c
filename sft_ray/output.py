"""The output folder a build owns: one build at a time (a lease), and only its own files deleted.

**Lease** (`<output>/_LEASE`). Two builds on one output would interleave their writes (every id
twice in curated/) or delete each other's outputs, so a build holds a lease for its whole run and a
second build refuses at once, naming the holder (run id, host, pid, start time, command):

- local paths: an exclusive `flock` on `_LEASE`. The kernel releases it when the holder exits,
  however it dies (SIGKILL included), so a dead holder's lease is never stale; the file itself
  stays (unlinking a locked file lets a third process lock a new inode while a second still holds
  the old one) and only says who holds it now.
- object stores: `_LEASE` is created with a conditional PUT (`If-None-Match: *`: exactly one of two
  concurrent creators succeeds), refreshed by a heartbeat every `ttl_s / 3`, and deleted on release.
  A lease whose heartbeat is older than `ttl_s` belongs to a dead holder and is taken over with a
  PUT conditional on its ETag (`If-Match`), so of two builds taking over the same stale lease one
  wins and the other refuses. S3 has supported both conditions since 2024-11
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html). Stores without
  conditional writes get a check-then-write lease (a narrow race window), with a warning.

**Ownership** (`<output>/_SFT_RAY_OUTPUT`). A rebuild deletes the previous run's curated/, rejects/,
sft/, report/ and manifest. It does that only in a folder this tool created: the marker is written
when a build first takes an empty (or new) folder, and a non-empty folder without it is refused,
so a mistyped `output` never deletes a user's `report/` or `sft/`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from sft_ray import storage

log = logging.getLogger("sft_ray")
LEASE = "_LEASE"
OWNER = "_SFT_RAY_OUTPUT"
# A holder refreshes every ttl/3, so a live build misses three heartbeats in a row before another
# may take over; 10 minutes outlasts a stalled store call with all its retries (storage.py).
LEASE_TTL_S = 600.0


class OutputError(Exception):
    """The output cannot be used as asked (held by another build, not ours, or changed since built)."""


class OutputBusy(OutputError):
    pass


class NotOwned(OutputError):
    pass


def _holder(run_id: str) -> dict:
    return {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)[:300]}


def describe(holder: dict) -> str:
    if not holder:
        return "another build (holder unknown)"
    return (f"build {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started_at', '?')}: {holder.get('command', '')!r})")


@dataclass
class Lease:
    """A held lease; `release()` (or leaving the `with` block) gives it back."""

    url: str
    storage_options: dict
    holder: dict
    ttl_s: float = LEASE_TTL_S
    _fd: int | None = None
    _etag: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    lost: bool = False

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is not None:  # closing the descriptor drops the flock
            os.close(self._fd)
            self._fd = None
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._etag is not None and not self.lost:
            fs, path = storage.get_fs(self.url, self.storage_options)
            try:
                if _etag_of(fs, path) == self._etag:  # still ours: a takeover after our death is not deleted
                    fs.rm(path)
            except FileNotFoundError:
                pass
            except Exception as e:  # noqa: BLE001 - never mask the build's own error; the lease then expires by its ttl
                log.warning("output lease %s not released (%s: %s); it expires %.0f s after its last heartbeat",
                            self.url, type(e).__name__, e, self.ttl_s)
            self._etag = None

    def _heartbeat(self) -> None:
        fs, path = storage.get_fs(self.url, self.storage_options)
        while not self._stop.wait(self.ttl_s / 3):
            body = json.dumps({**self.holder, "heartbeat_at": time.time(), "ttl_s": self.ttl_s})
            try:
                self._etag = _put(fs, path, body, if_match=self._etag)
            except Exception as e:  # noqa: BLE001 - a lost lease is reported, the build goes on
                self.lost = True
                log.error("output lease %s lost (%s: %s): another build may now write to this output", self.url, type(e).__name__, e)
                return


def acquire(out: str, storage_options: dict, run_id: str | None = None, ttl_s: float = LEASE_TTL_S) -> Lease:
    """Take the output's lease or raise OutputBusy naming its holder (module docstring)."""
    url = storage.join(out, LEASE)
    holder = _holder(run_id or uuid.uuid4().hex[:12])
    if storage.is_local(out):
        return _acquire_local(url, holder)
    return _acquire_store(url, storage_options, holder, ttl_s)


def _acquire_local(url: str, holder: dict) -> Lease:
    import fcntl

    path = url.removeprefix("file://")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            current = json.loads(os.pread(fd, 65536, 0) or b"{}")
        except ValueError:
            current = {}
        os.close(fd)
        raise OutputBusy(f"output {os.path.dirname(path)} is being built by {describe(current)}; "
                         "wait for it to finish or stop it (its lease ends when it exits)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    return Lease(url, {}, holder, _fd=fd)


def _acquire_store(url: str, storage_options: dict, holder: dict, ttl_s: float) -> Lease:
    fs, path = storage.get_fs(url, storage_options)
    body = json.dumps({**holder, "heartbeat_at": time.time(), "ttl_s": ttl_s})
    try:
        etag = _put(fs, path, body, create=True)
    except FileExistsError:
        try:
            current_etag, current = _etag_of(fs, path), json.loads(fs.cat_file(path) or b"{}")
        except FileNotFoundError:  # released between our PUT and this read: try once more
            return _acquire_store(url, storage_options, holder, ttl_s)
        age = time.time() - float(current.get("heartbeat_at", 0))
        if age < float(current.get("ttl_s", ttl_s)):
            raise OutputBusy(f"output {url.rsplit('/', 1)[0]} is being built by {describe(current)} "
                             f"(last heartbeat {age:.0f} s ago); wait for it to finish or stop it") from None
        log.warning("output lease %s: taking over from %s, silent for %.0f s (dead)", url, describe(current), age)
        try:
            etag = _put(fs, path, body, if_match=current_etag)
        except (FileExistsError, OSError) as e:
            raise OutputBusy(f"output {url.rsplit('/', 1)[0]}: another build took over the stale lease first ({e})") from None
    lease = Lease(url, storage_options, holder, ttl_s, _etag=etag)
    lease._thread = threading.Thread(target=lease._heartbeat, name="sft_ray-lease", daemon=True)
    lease._thread.start()
    return lease


def _put(fs, path: str, body: str, *, create: bool = False, if_match: str | None = None) -> str | None:
    """PUT `body`; `create`: only if absent (FileExistsError otherwise); `if_match`: only over that
    ETag (OSError otherwise). Returns the new ETag (None where the store does not give one)."""
    if getattr(fs, "protocol", None) and set(fs.protocol) & {"s3", "s3a"}:
        kwargs = {"IfMatch": if_match} if if_match else {}
        out = fs.pipe_file(path, body.encode(), mode="create" if create else "overwrite", **kwargs)
        fs.invalidate_cache(path)
        return (out or {}).get("ETag") or _etag_of(fs, path)
    # Other stores: check, then write (no atomic condition: the race window is the write's).
    log.warning("output lease on %s: the store has no conditional writes here; the lease is best effort", fs.protocol)
    if create and fs.exists(path):
        raise FileExistsError(path)
    with fs.open(path, "wb") as f:
        f.write(body.encode())
    return _etag_of(fs, path)


def _etag_of(fs, path: str) -> str | None:
    fs.invalidate_cache(path)
    info = fs.info(path)
    return info.get("ETag") or info.get("etag") or info.get("generation") or str(info.get("mtime") or info.get("LastModified") or "")


def claim(out: str, storage_options: dict) -> None:
    """Make sure `out` is ours to clean (module docstring): write the ownership marker into a new or
    empty folder; accept a folder that has it; refuse any other non-empty folder, naming what is there."""
    fs, path = storage.get_fs(out, storage_options)
    try:
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)) if fs.exists(path) else []
    except (FileNotFoundError, NotADirectoryError):
        names = []
    if OWNER in names or _built_before(out, names, storage_options):
        if OWNER not in names:
            _write_owner(out, storage_options)
        return
    others = [n for n in names if n != LEASE]
    if others:
        shown = ", ".join(others[:5]) + (f", ... ({len(others)} entries)" if len(others) > 5 else "")
        raise NotOwned(f"output {out} is not empty ({shown}) and was not created by sft_ray (no {OWNER} marker): "
                       "a build deletes its previous outputs there, so it only builds into a new or empty folder, or one it created")
    _write_owner(out, storage_options)


def _built_before(out: str, names: list[str], storage_options: dict) -> bool:
    """An output of an sft_ray from before the marker: its manifest says it is a build's, or (an
    interrupted build) its `_work/` holds the staging fingerprint."""
    if "_work" in names and storage.exists(storage.join(out, "_work", "fingerprint.json"), storage_options):
        return True
    if "manifest.json" not in names:
        return False
    try:
        return storage.read_json(storage.join(out, "manifest.json"), storage_options).get("kind") == "build"
    except (ValueError, OSError, AttributeError):
        return False


def _write_owner(out: str, storage_options: dict) -> None:
    from sft_ray import __version__

    storage.write_json(storage.join(out, OWNER), {"tool": "sft_ray", "version": __version__,
                                                  "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, storage_options)

"""Masking at the process's file descriptors 1 and 2 themselves, where Lambda reads the function's log.

`sys.stdout` is wrapped by `secrets` once a secret is read, but much reaches the log without passing it:
`sys.stdout.buffer`, `sys.__stdout__`, `os.write(1, ...)`, a C extension's `printf`, a subprocess (which
inherits the descriptors, not the Python objects). So `install` moves the real descriptors away (`dup`) and
points 1 and 2 at pipes; one reader thread masks what arrives (`masking.StreamMasker`: a secret split over
two writes is still seen whole, only a tail that begins a spelling is held back) and writes it to the real
descriptors. UTF-8 is decoded incrementally, so a character split between two reads is never cut, and bytes
that are not UTF-8 pass through unchanged (`surrogateescape`).

`flush` drains both pipes and writes what was held back; the handlers call it when each invocation ends
(`handlers.observability.redacted_output`), so the invocation's log is complete before Lambda freezes
the process, and at exit. Installing is the handlers' decision, in Lambda only: the local stack runs many
functions, a CLI and (under pytest) a capturing test runner in one process, whose descriptors are not the
function's to take. Tests install it in a subprocess.
"""

from __future__ import annotations

import atexit
import codecs
import os
import selectors
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serverless_agents.security.masking import StreamMasker

_READ = 65536
_lock = threading.Lock()
_channels: list[_Channel] = []


@dataclass
class _Channel:
    """One redirected descriptor: the pipe's read end, the real descriptor, what is being masked."""

    read_end: int
    real: int
    masker: StreamMasker
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pump(self, *, final: bool) -> bool:
        """Read what the pipe holds now and write it masked; `final` writes what was held back too.
        False once the pipe is closed."""
        with self.lock:
            open_ = True
            while True:
                try:
                    data = os.read(self.read_end, _READ)
                except BlockingIOError:
                    break
                if not data:
                    open_ = False
                    break
                self._write(self.masker.feed(self.decoder.decode(data)))
                if not final:
                    break
            if final:
                self._write(self.masker.feed(self.decoder.decode(b"", final=True)) + self.masker.finish())
            return open_

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", errors="surrogateescape")
        while data:
            data = data[os.write(self.real, data) :]


def installed() -> bool:
    return bool(_channels)


def install(fds: tuple[int, ...] = (1, 2)) -> None:
    """Mask what is written to `fds` from now on (idempotent)."""
    from serverless_agents.security.masking import StreamMasker

    with _lock:
        if _channels:
            return
        for fd in fds:
            try:
                real = os.dup(fd)
            except OSError:  # not open: nothing is printed there
                continue
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            os.dup2(write_end, fd)
            os.close(write_end)
            _channels.append(_Channel(read_end, real, StreamMasker()))
        threading.Thread(target=_read, args=(list(_channels),), name="fd-redaction", daemon=True).start()
        atexit.register(flush)


def flush() -> None:
    """Write everything printed so far, masked, including what was held back (end of an invocation)."""
    if not _channels:
        return
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed stream has nothing to flush
            pass
    for channel in list(_channels):
        channel.pump(final=True)


def _read(channels: list[_Channel]) -> None:
    with selectors.DefaultSelector() as selector:  # epoll on Linux: no limit on descriptor numbers
        for channel in channels:
            selector.register(channel.read_end, selectors.EVENT_READ, channel)
        while selector.get_map():
            for key, _ in selector.select():
                if not key.data.pump(final=False):
                    selector.unregister(key.fd)

"""Single-key control from a terminal: a thread reads keys in cbreak mode and hands them on."""
from __future__ import annotations

import logging
import os
import select
import sys
import termios
import threading
import tty
from typing import Callable, TextIO

LOG = logging.getLogger(__name__)


class KeyReader:
    """Calls ``on_key(key)`` for every key typed; the terminal mode is restored by ``stop``."""

    def __init__(self, on_key: Callable[[str], None], stream: TextIO | None = None) -> None:
        self._on_key = on_key
        self._stream = stream or sys.stdin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def available(stream: TextIO | None = None) -> bool:
        """Whether the stream is a terminal (a launch file or a pipe gives none)."""
        stream = stream or sys.stdin
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name='keyboard', daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        fd = self._stream.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    key = os.read(fd, 1).decode(errors='replace')
                    if not key:
                        return
                    self._on_key(key)
        except (OSError, termios.error) as exc:
            LOG.warning('keyboard control stopped: %s', exc)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

"""KeyReader on a real pseudo-terminal: keys arrive one by one, the mode is restored."""
import os
import pty
import termios
import threading
import time

from il_policy_node.ros.keyboard import KeyReader


def test_keys_from_a_terminal_reach_the_callback_and_the_mode_is_restored():
    leader, follower = pty.openpty()
    with os.fdopen(follower, 'r') as stream:
        assert KeyReader.available(stream)
        before = termios.tcgetattr(follower)
        keys: list[str] = []
        got_all = threading.Event()

        def on_key(key: str) -> None:
            keys.append(key)
            if len(keys) == 3:
                got_all.set()

        reader = KeyReader(on_key, stream)
        reader.start()
        try:
            deadline = time.monotonic() + 5.0     # entering cbreak mode flushes pending input
            while termios.tcgetattr(follower)[3] & termios.ICANON:
                assert time.monotonic() < deadline, 'the reader never left canonical mode'
                time.sleep(0.01)
            os.write(leader, b' fd')            # no Enter: cbreak mode delivers each key
            assert got_all.wait(5.0), keys
        finally:
            reader.stop()
        assert keys == [' ', 'f', 'd']
        assert termios.tcgetattr(follower) == before
    os.close(leader)


def test_a_pipe_is_not_a_terminal(tmp_path):
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as stream:
        assert not KeyReader.available(stream)
    os.close(write_end)

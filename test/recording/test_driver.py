"""The episode driver's sequence, step by step, with a scripted player and recorder.

The real players (demonstrator, mocap_bridge) and the real recorder meet over DDS in
test/integration; here each step of the state machine is pinned down on its own.
"""
from il_policy_node.errors import RecordingError
from il_policy_node.recording.driver import (
    SETTLE_MARGIN_S,
    EpisodeDriver,
    Finished,
    Phase,
    Preparation,
)


class Recorder:
    """Answers each start/stop request after ``delay`` polls; records what it was asked."""

    def __init__(self, delay=1, refuse_start=False):
        self.calls, self.delay, self.refuse_start = [], delay, refuse_start
        self._pending = 0

    def ready(self, now):
        self.calls.append('ready')
        return now >= 1.0

    def request_start(self, now):
        self.calls.append('start')
        self._pending = self.delay

    def poll_start(self, now):
        if self.refuse_start:
            raise RecordingError('/demo_recorder/start_episode refused: disk full')
        self._pending -= 1
        return self._pending < 0

    def request_stop(self, now, success=True):
        self.calls.append(f'stop {success}')
        self._pending = self.delay

    def poll_stop(self, now):
        self._pending -= 1
        return self._pending < 0


class Player:
    """Two episodes; the second needs one more poll to be prepared; each lasts 0.5 s."""

    def __init__(self, skip_first=False):
        self.index, self.log, self.skip_first, self.polls = -1, [], skip_first, 0

    def listeners_ready(self, now):
        return True

    def next_episode(self, now):
        self.index += 1
        self.log.append(f'open {self.index}')
        return self.index < 2

    def poll(self, now):
        self.polls += 1

    def prepare(self, now):
        if self.skip_first and self.index == 0:
            return Preparation.SKIPPED
        return Preparation.WAIT if self.index == 1 and self.polls % 2 else Preparation.READY

    def move_to_start(self, now):
        self.log.append(f'settle {self.index}')
        return 1.0

    def begin(self, now):
        self.started = now
        self.log.append(f'begin {self.index} at {now:g}')

    def stream(self, now):
        return now - self.started >= 0.5

    def success(self):
        return self.index == 0

    def summary(self):
        return Finished(0, f'done after {self.index} episodes')


def _run(driver, until=20.0, dt=0.1):
    now, phases = 0.0, []
    while now < until and driver.step(now) is None:
        phases.append(driver.phase)
        now = round(now + dt, 6)
    return driver.result, phases


def test_episodes_go_through_every_phase_in_order():
    player, recorder = Player(), Recorder()
    result, phases = _run(EpisodeDriver(player, recorder))
    assert result == Finished(0, 'done after 2 episodes')
    assert phases[0] is Phase.WAITING and phases[-1] is not Phase.WAITING
    seen = []
    for phase in phases:
        if not seen or seen[-1] is not phase:
            seen.append(phase)
    assert seen[:6] == [Phase.WAITING, Phase.SETTLING, Phase.STARTING, Phase.STREAMING,
                        Phase.STOPPING, Phase.PREPARING]
    assert recorder.calls.count('start') == 2
    assert [c for c in recorder.calls if c.startswith('stop')] == ['stop True', 'stop False']
    begun = [float(entry.split()[-1]) for entry in player.log if entry.startswith('begin')]
    assert begun[0] >= 1.0 + 1.0 + SETTLE_MARGIN_S    # ready at 1 s, then the settle wait


def test_an_episode_that_cannot_be_played_is_skipped():
    player, recorder = Player(skip_first=True), Recorder()
    result, _ = _run(EpisodeDriver(player, recorder))
    assert result.exit_code == 0
    assert 'settle 0' not in player.log and 'settle 1' in player.log
    assert recorder.calls.count('start') == 1


def test_a_recorder_failure_ends_the_run_with_its_message():
    result, phases = _run(EpisodeDriver(Player(), Recorder(refuse_start=True)))
    assert result == Finished(1, '/demo_recorder/start_episode refused: disk full')
    assert Phase.STREAMING not in phases

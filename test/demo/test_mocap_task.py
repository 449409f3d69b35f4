"""The mocap task's pieces: the held-out clip's cycles, the key-body error, the animation."""
import os

import pytest

from il_policy_node.demo import animation
from il_policy_node.demo.mocap import (
    CONTROL_RATE_HZ,
    MODEL,
    HeldOutClip,
    KeyBodies,
    key_body_error_cm,
    write_clips,
)
from il_policy_node.mocap.bvh import load_bvh
from il_policy_node.mocap.ik import IkOptions, IkRetargeter
from il_policy_node.mocap.skeleton import choose


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    path, = write_clips(tmp_path_factory.mktemp('clips'), seed=7, count=1)
    retargeter = IkRetargeter(MODEL, IkOptions(rate_hz=CONTROL_RATE_HZ))
    return HeldOutClip(path, retargeter), retargeter


def test_the_clips_use_a_cmu_skeleton_found_by_auto(clip):
    held_out, _ = clip
    assert choose(load_bvh(held_out.path)).skeleton == 'cmu'
    assert 0.76 < held_out.joints.period_s < 0.88          # one wave (and one step) per cycle
    assert held_out.key_bodies.period_s == held_out.joints.period_s


def test_the_key_body_error_of_the_clip_itself_is_small_and_grows_with_an_offset(clip):
    held_out, retargeter = clip
    fk = KeyBodies(retargeter)
    motion = held_out.ik.motion
    # against the clip's mean cycle: the sway that does not repeat at the wave's period
    exact = key_body_error_cm(motion.times, motion.positions, held_out, fk)
    assert 0.0 < exact < 2.5
    shifted = motion.positions.copy()
    elbow = retargeter.info.index()['right_elbow_joint']
    shifted[:, elbow] -= 0.3                                 # the forearm 0.3 rad off
    worse = key_body_error_cm(motion.times, shifted, held_out, fk)
    # the hand is 0.25 m from the elbow: a chord of 7.5 cm on one body of nine
    assert exact + 1.0 < worse < exact + 4.0
    # a run a quarter cycle late: phase-aligned, only the sway that does not repeat remains
    late = motion.times + 0.2
    assert key_body_error_cm(late, motion.positions, held_out, fk) < exact + 0.5


def test_the_animation_is_a_gif_or_a_note_never_a_failure(clip, tmp_path, monkeypatch):
    held_out, _ = clip
    motion = held_out.ik.motion
    keep = motion.times <= 1.0
    monkeypatch.setenv('MUJOCO_GL', 'no_such_backend')
    note = animation.animate_run(tmp_path / 'none.gif', held_out.path, motion.times[keep],
                                 motion.positions[keep])
    assert note.startswith('animation skipped: no offscreen OpenGL (MUJOCO_GL=no_such_backend')
    assert not (tmp_path / 'none.gif').exists() and not list(tmp_path.glob('*.npz'))
    monkeypatch.setenv('MUJOCO_GL', os.environ.get('IL_POLICY_TEST_GL', 'egl'))
    note = animation.animate_run(tmp_path / 'run.gif', held_out.path, motion.times[keep],
                                 motion.positions[keep])
    if note:                                  # a machine without EGL: the note says why
        assert note.startswith('animation skipped')
        return
    from PIL import Image
    with Image.open(tmp_path / 'run.gif') as gif:
        assert gif.n_frames == 10 and gif.size == animation.SIZE

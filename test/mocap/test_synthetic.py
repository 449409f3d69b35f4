"""The synthetic wave clip: deterministic, at the asked rate, waving at the asked tempo."""
import numpy as np
import pytest

from il_policy_node.errors import MocapError
from il_policy_node.mocap.bvh import load_bvh, write_bvh
from il_policy_node.mocap.synthetic import HIPS_HEIGHT_CM, skeleton, wave_angles, wave_clip


def test_the_skeleton_is_the_cmu_like_one_the_map_expects():
    joints = skeleton()
    names = [j.name for j in joints]
    assert names[:5] == ['Hips', 'Spine', 'Spine1', 'Neck', 'Head'] and len(names) == 19
    assert len(joints[0].channels) == 6 and all(len(j.channels) == 3 for j in joints[1:])
    assert {n for n in names if joints[names.index(n)].end_site} == {
        'Head', 'LeftHand', 'RightHand', 'LeftFoot', 'RightFoot'}
    assert joints[names.index('LeftArm')].offset[0] > 0 > joints[names.index('RightArm')].offset[0]


@pytest.mark.parametrize('rate_hz', [30.0, 60.0, 120.0])
def test_rate_duration_and_file_round_trip(tmp_path, rate_hz):
    clip = wave_clip(duration_s=2.0, rate_hz=rate_hz, seed=1)
    assert clip.num_frames == 2 * rate_hz + 1 and clip.frame_time == 1 / rate_hz
    write_bvh(tmp_path / 'wave.bvh', clip)
    again = load_bvh(tmp_path / 'wave.bvh')
    np.testing.assert_allclose(again.frames, clip.frames, atol=1e-6)
    assert np.abs(again.root_positions[:, 1] - HIPS_HEIGHT_CM).max() == pytest.approx(1.0, 1e-3)


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = (wave_clip(duration_s=1.0, seed=s) for s in (5, 5, 6))
    assert np.array_equal(a.frames, b.frames)
    assert not np.allclose(a.frames, c.frames)


def test_the_elbow_waves_at_the_tempo_with_the_amplitude():
    t = np.arange(0, 10, 0.01)
    elbow = wave_angles(t, tempo_hz=1.6, amplitude=0.5)['right_elbow_joint'][t >= 1.0]
    spectrum = np.abs(np.fft.rfft(elbow - elbow.mean()))
    assert np.fft.rfftfreq(elbow.size, 0.01)[spectrum.argmax()] == pytest.approx(1.6, abs=0.12)
    assert elbow.max() - elbow.min() == pytest.approx(2 * 0.35 * 0.5, rel=1e-3)
    still = wave_angles(t, amplitude=0.0)
    assert np.ptp(still['right_elbow_joint'][t >= 1.0]) == 0.0
    assert np.ptp(still['head_yaw_joint']) == 0.0


def test_bad_duration_or_rate_is_refused():
    with pytest.raises(MocapError, match='must be > 0'):
        wave_clip(duration_s=0.0)
    with pytest.raises(MocapError, match='must be > 0'):
        wave_clip(rate_hz=-30.0)

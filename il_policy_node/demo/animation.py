"""A short animation (GIF) of a held-out clip: the human skeleton beside the robot.

The robot is drawn by MuJoCo's offscreen renderer at the joint positions the policy drove it
to; the human skeleton (the clip's BVH joints, in robot axes and metres through the IK
calibration, one capsule per bone) stands 1 m to its left, feet on the floor. Rendering runs
in its own process with MUJOCO_GL=egl (or the caller's MUJOCO_GL, e.g. osmesa with Debian's
libosmesa6): without an OpenGL library the animation is skipped with a note, never a
failure. ``python -m il_policy_node.demo.animation RUN.npz CLIP.bvh OUT.gif`` is that
process (RUN.npz: arrays t [n] and q [n, joints], written by :func:`animate_run`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

FPS = 10.0
SIZE = (320, 240)                        # width, height
HUMAN_OFFSET_M = 1.0                     # to the robot's left
TIMEOUT_S = 600.0
MODEL = 'humanoid'


def animate_run(path: Path, clip_path: Path, t: np.ndarray, q: np.ndarray) -> str:
    """Write ``path`` (GIF); '' when written, else a note saying why it was skipped."""
    run = path.with_suffix('.run.npz')
    np.savez(run, t=np.asarray(t, np.float64), q=np.asarray(q, np.float64))
    env = {**os.environ, 'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl')}
    try:
        done = subprocess.run([sys.executable, '-m', 'il_policy_node.demo.animation', str(run),
                               str(clip_path), str(path)], env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f'animation skipped: rendering took over {TIMEOUT_S:.0f} s'
    finally:
        run.unlink(missing_ok=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['no output'])[-1]
        return (f'animation skipped: no offscreen OpenGL (MUJOCO_GL={env["MUJOCO_GL"]}; '
                f'install libegl1 or libosmesa6 and set MUJOCO_GL=osmesa): {last}')
    return ''


def _bones(clip, calibration, frames: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Joint and End Site positions [frames, points, 3] beside the robot, and the bones."""
    from il_policy_node.mocap.kinematics import END_SITE, world_positions
    names, bones = [], []
    for i, joint in enumerate(clip.joints):
        names.append(joint.name)
        if joint.parent >= 0:
            bones.append((joint.parent, i))
    for i, joint in enumerate(clip.joints):
        if joint.end_site is not None:
            names.append(joint.name + END_SITE)
            bones.append((i, len(names) - 1))
    points = np.stack([world_positions(clip, n)[frames] for n in names], axis=1)
    points = (points * calibration.scale) @ calibration.axes.T
    points[..., :2] -= points[0, 0, :2]
    points[..., 1] += HUMAN_OFFSET_M
    points[..., 2] -= points[..., 2].min()                   # the lowest point on the floor
    return points, bones


def render(run: Path, clip_path: Path, out: Path) -> None:
    """The GIF of the policy's run beside the clip (needs offscreen OpenGL)."""
    import mujoco
    from PIL import Image

    from il_policy_node.mocap.bvh import load_bvh
    from il_policy_node.mocap.ik import IkRetargeter
    from il_policy_node.mocap.skeleton import choose
    with np.load(run, allow_pickle=False) as data:
        t, q = data['t'], data['q']
    clip = load_bvh(clip_path)
    retargeter = IkRetargeter(MODEL)
    calibration = retargeter.calibrate(clip, choose(clip))
    model, data = retargeter.model, mujoco.MjData(retargeter.model)
    times = np.arange(0.0, min(t[-1], clip.times[-1]), 1.0 / FPS)
    frames = np.clip(np.round(times / clip.frame_time).astype(int), 0, clip.num_frames - 1)
    points, bones = _bones(clip, calibration, frames)
    renderer = mujoco.Renderer(model, SIZE[1], SIZE[0])
    camera = mujoco.MjvCamera()
    camera.lookat[:] = (0.0, HUMAN_OFFSET_M / 2, 0.9)
    camera.distance, camera.azimuth, camera.elevation = 3.6, 180.0, -10.0
    images = []
    for k, time_s in enumerate(times):
        data.qpos[retargeter.joint_qpos] = [np.interp(time_s, t, q[:, j])
                                            for j in range(q.shape[1])]
        mujoco.mj_forward(model, data)
        renderer.update_scene(data, camera)
        scene = renderer.scene
        for a, b in bones:
            if scene.ngeom >= scene.maxgeom:
                break
            geom = scene.geoms[scene.ngeom]
            mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_CAPSULE, np.zeros(3), np.zeros(3),
                                np.zeros(9), np.array([0.9, 0.5, 0.2, 1.0], np.float32))
            mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_CAPSULE, 0.02,
                                 points[k, a], points[k, b])
            scene.ngeom += 1
        images.append(Image.fromarray(renderer.render()))
    renderer.close()
    images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / FPS),
                   loop=0)


if __name__ == '__main__':
    render(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))

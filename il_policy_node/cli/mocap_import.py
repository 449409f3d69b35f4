"""il-policy mocap import: BVH clips -> demonstration bags (one episode per clip)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from il_policy_node.cli.common import EXIT_FAILED, EXIT_OK, PROG, existing
from il_policy_node.errors import ConfigError
from il_policy_node.mocap.topics import (
    COMMAND_TOPIC,
    END_EFFECTOR_NAMESPACE,
    IMPORT_SESSION,
    ROOT_POSE_TOPIC,
)

HELP = 'BVH clips -> demonstration bags (one episode per clip)'
DESCRIPTION = '''\
Retarget BVH motion capture clips onto the robot's joints and write each clip as one
demonstration episode in the demo recorder's layout, which `dataset build` reads like recorded
ones (observation topic /mocap/joint_command, action source future_state).

Two methods:
- inverse kinematics (no --retarget; needs --model): the robot's key bodies (pelvis, torso,
  head, elbows, hands, knees, feet, toes) follow the human's after per-segment scaling, with
  joint limits, velocity limits and self-collision avoidance as constraints (mink). The
  skeleton is recognized by its joint names (--skeleton auto: CMU, MotionBuilder, Mixamo,
  LAFAN1, the synthetic clips) or given (a preset name or a skeleton file, see
  config/skeletons/); the rest pose (the BVH zero pose, or --rest-frame) calibrates the
  orientations; no hand-written offsets. Each clip gets a quality report: one line here, and
  episode_NNNN.quality.json and .png beside its bag (key-body error, limit clamps, velocity
  violations, jumps, self-collision frames, foot sliding with --floating-root); --strict
  rejects the clips over its thresholds.
- a retarget map (--retarget MAP_YAML, see config/retarget/humanoid_upper.yaml): exact joint
  correspondences with Euler orders and rest rotations written by hand, per skeleton.

Robot joints and limits: --model NAME (a sim model: its actuated joints and ranges), --urdf FILE
(the map's joints, limits from the URDF), or neither (the map's joints in the map's order,
limits only from its `limits:`). A map must name exactly the robot's joints; its `limits:`
narrow the robot's. Positions outside the limits are clamped: each clip reports which joints,
on how many samples and by how much (also in the bag's metadata).

Reads:  each BVH file (or folder searched for *.bvh) and the retarget map (YAML, see
        config/retarget/humanoid_upper.yaml).
Writes: OUT_DIR/SESSION/episode_NNNN/ (a rosbag2 bag, MCAP unless --storage sqlite3) per clip,
        and OUT_DIR/SESSION/episodes.jsonl. Topics: --command-topic (sensor_msgs/JointState:
        name, position, velocity at the map's rate_hz, or the clip's own rate or --rate with IK)
        and --end-effector-namespace/<name> (geometry_msgs/PointStamped per end effector, metres:
        the map's, frame_id its relative_to BVH joint; with IK the robot's head, hands and feet,
        frame_id pelvis, or world with --floating-root), and with IK --root-pose-topic
        (geometry_msgs/PoseStamped, the pelvis in world). Sample i is stamped start + i /
        rate_hz (header and bag time); start is the file's modification time unless
        --start-time. Metadata (custom_data): the
        recorder's keys (task, operator, success, ...) and mocap_* keys: source file and sha256,
        map and its fingerprint, clip frame rate, frames, duration, target rate, robot, joints,
        topics, clamped joints.
A bad clip (malformed BVH, a joint the map needs missing, a skeleton no preset fits, too
short) is reported naming the file and the line or joint, and skipped; the exit status is then
1 (--strict: stop there).
A clip already in the session (same file content and map) is skipped unless --reimport. An
interrupted import leaves no bag that looks complete.'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('clips', nargs='+', metavar='BVH',
                        help='BVH files, or folders searched for *.bvh')
    parser.add_argument('--retarget', default=None, metavar='MAP_YAML',
                        help='retarget map (YAML); without it: inverse kinematics onto --model')
    parser.add_argument('-o', '--output', required=True, metavar='OUT_DIR',
                        help="folder of sessions (the recorder's output_dir)")
    parser.add_argument('--session', default=IMPORT_SESSION, metavar='NAME',
                        help='session folder in OUT_DIR (default: %(default)s); an existing '
                             'session gets further episodes')
    parser.add_argument('--task', default='', metavar='NAME',
                        help="task label in every episode's metadata")
    parser.add_argument('--operator', default='', metavar='NAME',
                        help='operator (performer) name in the metadata')
    robot = parser.add_mutually_exclusive_group()
    robot.add_argument('--model', default=None, metavar='NAME',
                       help='sim robot model (il_policy_node/robots), e.g. humanoid_upper')
    robot.add_argument('--urdf', default=None, metavar='FILE',
                       help="the robot's URDF: limits of the map's joints")
    parser.add_argument('--command-topic', default=COMMAND_TOPIC, metavar='TOPIC',
                        help='JointState topic (default: %(default)s)')
    parser.add_argument('--end-effector-namespace', default=END_EFFECTOR_NAMESPACE,
                        metavar='NS', help='PointStamped topics NS/<name> (default: '
                                           '%(default)s)')
    ik = parser.add_argument_group('inverse kinematics (without --retarget)')
    ik.add_argument('--skeleton', default='auto', metavar='NAME|FILE',
                    help='skeleton preset (cmu, motionbuilder, mixamo, lafan1, synthetic), a '
                         'skeleton file, or auto (default: by the joint names)')
    ik.add_argument('--floating-root', action='store_true',
                    help='the pelvis follows the clip (default: pinned, as the sim robot)')
    ik.add_argument('--rest-frame', type=int, default=None, metavar='N',
                    help='the frame that calibrates the orientations (default: the BVH zero '
                         'pose)')
    ik.add_argument('--unit', choices=('m', 'cm', 'mm', 'in'), default=None,
                    help="the BVH's length unit (default: from the skeleton's height)")
    ik.add_argument('--rate', type=float, default=None, metavar='HZ',
                    help="output rate (default: the clip's frame rate)")
    ik.add_argument('--root-pose-topic', default=ROOT_POSE_TOPIC, metavar='TOPIC',
                    help='PoseStamped topic of the pelvis (default: %(default)s)')
    parser.add_argument('--start-time', type=float, default=None, metavar='UNIX_S',
                        help='time of the first sample of every clip (default: the '
                             "file's modification time)")
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default=None,
                        help="bag storage (default: the recorder's, mcap)")
    parser.add_argument('--compression', choices=('none', 'zstd'), default=None,
                        help="bag compression (default: the recorder's, none)")
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first bad clip; reject clips over the quality '
                             'thresholds (IK)')
    parser.add_argument('--reimport', action='store_true',
                        help='import clips the session already holds again')


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from il_policy_node.mocap import importer
    from il_policy_node.mocap.retarget import load_retarget_map
    from il_policy_node.runtime.robot import RobotJoints
    map_path = ik = None
    if args.retarget is not None:
        map_path = existing(args.retarget, 'retarget map')
    elif args.model is None:
        raise ConfigError('inverse kinematics needs --model (or give --retarget MAP_YAML)')
    else:
        from il_policy_node.mocap.ik import IkOptions
        from il_policy_node.mocap.methods import IkSettings
        ik = IkSettings(model=args.model, skeleton=args.skeleton, options=IkOptions(
            rate_hz=args.rate, floating_root=args.floating_root, rest=args.rest_frame,
            unit=args.unit))
    robot = None
    if map_path is not None and args.model is not None:
        from il_policy_node.robots.models import robot_joints
        robot = robot_joints(args.model)
    elif map_path is not None and args.urdf is not None:
        urdf = existing(args.urdf, 'URDF file')
        robot = RobotJoints.from_urdf(urdf.read_text(encoding='utf-8'),
                                      tuple(load_retarget_map(map_path).joints),
                                      f'urdf {urdf.resolve()}')
    storage = {key: value for key, value in (('storage', args.storage),
                                             ('compression', args.compression)) if value}
    config = importer.ImportConfig(
        map_path=map_path, ik=ik, output_dir=Path(args.output), session=args.session,
        task=args.task, root_pose_topic=args.root_pose_topic,
        operator=args.operator, robot=robot, command_topic=args.command_topic,
        end_effector_namespace=args.end_effector_namespace, start_time_s=args.start_time,
        strict=args.strict, reimport=args.reimport, **storage)

    def show(result) -> None:
        if result.status in (importer.FAILED, importer.REJECTED):
            tqdm.write(f'{PROG}: error: {result.message}', file=sys.stderr)
            if result.quality:
                tqdm.write(f'  quality: {result.quality}', file=sys.stderr)
        else:
            tqdm.write(result.describe())

    report = importer.import_clips(args.clips, config=config, progress=not args.quiet,
                                   on_result=show)
    failed = report.count(importer.FAILED)
    rejected = report.count(importer.REJECTED)
    skipped = report.count(importer.SKIPPED)
    print(f'{report.count(importer.IMPORTED)} of {report.files} clip(s) imported into '
          f'{report.session_dir}' + (f', {skipped} already there' if skipped else '')
          + (f', {failed} failed' if failed else '')
          + (f', {rejected} rejected by the quality thresholds' if rejected else '')
          + (', stopped at the first failure (--strict)'
             if len(report.results) < report.files else ''))
    return EXIT_OK if report.ok else EXIT_FAILED

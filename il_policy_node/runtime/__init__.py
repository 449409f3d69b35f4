"""What a robot needs to run a policy: the artifact contract, the runtime, the control loop.

Nothing here imports the offline pipeline, recording, mocap or the simulator, nor a package a
robot install lacks (rosbags, tqdm, matplotlib, scipy); nothing here imports ROS.
"""

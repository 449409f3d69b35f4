"""LeRobotDataset v3.0 interop: our datasets out as LeRobot folders, LeRobot folders in."""

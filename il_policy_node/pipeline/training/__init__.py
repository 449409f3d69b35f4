"""Training: windows of a dataset, the processor fitted to it, the loop, the run directory."""

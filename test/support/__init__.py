"""Shared helpers of the test suite (policies, processes, a lifecycle client)."""

"""Datasets: bags -> aligned episodes -> one dataset directory; reading and summarizing it."""

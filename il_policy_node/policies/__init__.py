"""Policies: a processor (normalization, input differences, reference add-back) + a network.

Importing the package imports no torch; its modules do (statistics.py: numpy only).
"""

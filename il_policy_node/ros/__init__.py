"""Thin rclpy adapters: parameters, message conversion, QoS, diagnostics."""

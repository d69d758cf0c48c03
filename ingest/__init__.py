"""Cameras to frames: the camera registry, stream readers and the worker pool."""

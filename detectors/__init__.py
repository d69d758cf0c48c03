"""Frames to events: zones, motion detection and the event lifecycle, all on the luma plane."""

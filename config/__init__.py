"""Settings and their schema: parsed once at the edge, then passed down as typed objects."""

from config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]

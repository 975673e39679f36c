"""Registers the ``[auth]`` config section (imported by ``SectionRegistry.discover``)."""

from webims.auth.config import AuthConfig, LoginLimits, PasswordParams

__all__ = ["AuthConfig", "LoginLimits", "PasswordParams"]

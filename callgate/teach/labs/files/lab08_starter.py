"""Lab 8: seal the process that runs a plugin, so that it can never start a program."""

from callgate.runtime.plugin import Plugin


def lock(plugin: Plugin) -> None:
    """Called once the plugin is loaded and before it runs. Make this irreversible."""
    # TODO: NO_NEW_PRIVS and a seccomp filter (see the hints)

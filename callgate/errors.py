"""The root of callgate's exception tree.

Every error callgate raises on purpose derives from :class:`CallgateError`, so an
embedding application can catch ours without catching its own bugs.
"""


class CallgateError(Exception):
    """Base class for every error callgate raises deliberately."""

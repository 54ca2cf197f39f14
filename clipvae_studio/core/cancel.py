"""Cancelling background work (decision maps, t-SNE): a module without torch, so the GUI can
name the exception before torch is loaded."""


class Cancelled(Exception):
    """A background computation was told to stop (its result would be stale)."""

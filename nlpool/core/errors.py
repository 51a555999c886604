"""The one exception type a user can cause.

Every command catches it and prints its message as a single line, so a message must say what is
wrong and how to fix it (e.g. "s1 must be 1, 2 or 4, got 3: pass --s1 1|2|4").
"""


class NlpoolError(Exception):
    """A problem with the user's input or environment; its message is shown as one line."""

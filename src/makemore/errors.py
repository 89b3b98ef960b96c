class UserError(Exception):
    """A problem with what the user gave us: shown as one line, exit code 2, no traceback."""

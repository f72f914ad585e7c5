"""The one exception type the command line turns into a one-line message and exit code 2."""


class UserError(ValueError):
    """Bad user input: the message is one sentence saying what is wrong and what to do."""

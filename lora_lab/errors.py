"""The one exception type for bad user input.

Everything a user can get wrong (an unknown method, a rank out of range, a knob the chosen method does
not have, a target selection that matches nothing, a missing data file or column) raises
`ConfigError` with a single line that names the bad key and the allowed values. The CLI prints that
line and exits with status 2 instead of showing a traceback.
"""


class ConfigError(ValueError):
    """Invalid configuration or input data; the message is one line meant for the user."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")

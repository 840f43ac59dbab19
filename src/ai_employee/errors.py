"""The project's errors: `UserError` is anything a user can fix, and its message says how."""


class AIEmployeeError(Exception):
    """Base of every error the engine raises on purpose."""


class UserError(AIEmployeeError):
    """A problem the user can fix; the message is one line that says how."""


class ConfigError(UserError):
    """The configuration is invalid; the message names the key and the fix."""


class VaultError(UserError):
    """The vault is missing, malformed or not writable."""


class EngineRunningError(UserError):
    """Another engine holds this vault's lock."""


class NotFoundError(UserError):
    """A plan or action named on the command line does not exist."""


class FormatError(AIEmployeeError):
    """A note or action file cannot be parsed; the message says what is wrong with it."""


class ConcurrentEditError(AIEmployeeError):
    """A file changed under us between reading and replacing it."""

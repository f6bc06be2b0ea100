"""User-facing errors.

Every error a person can cause (bad YAML, an unknown key, a cycle, a missing image, a port in use)
is an ``UserError``: the CLI prints its message on one line and exits non-zero, never a traceback.

    UserError
     ├── StackError        a stack file is wrong: carries file, line, column and the dotted key path
     ├── NotFoundError     a named container, image, network or volume does not exist
     └── ConflictError     the name is taken, or the object is in use
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; shown as one line, exit status ``exit_code``."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class StackError(UserError):
    """A stack file is invalid; ``str()`` gives ``FILE:LINE:COL: path: message``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column
        self.path = path

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class NotFoundError(UserError):
    """A named object does not exist."""


class ConflictError(UserError):
    """A name is already taken or an object is still in use."""

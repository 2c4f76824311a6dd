"""`CodegenError`: a mistake in the project the user can fix, reported without a traceback."""

from __future__ import annotations

__all__ = ["CodegenError"]


class CodegenError(Exception):
    """A user error: the message says what is wrong, the optional hint what to do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

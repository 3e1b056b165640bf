"""The one error type for a user's bad input: it names the file and the problem."""

from __future__ import annotations

import os


class InputError(ValueError):
    """Bad input from the user: one line, the file, the problem.

    The command line prints ``error: <path>: <problem>`` and exits with code 2;
    no traceback, since the mistake is the user's, not ours.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")

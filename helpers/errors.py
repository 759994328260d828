"""User-facing errors: one sentence that says what to do, never a traceback."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A mistake the user can fix (bad path, no credentials, no network); the message says how."""


def show_user_errors_briefly() -> None:
    """In a notebook, show a UserError as its one sentence instead of a traceback.

    The cell still fails (papermill and the runner stop on it); only the display is short.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: exceptions print as usual
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
        shell._showtraceback(etype, value, [f"{etype.__name__}: {value}"])

    shell.set_custom_exc((UserError,), handler)

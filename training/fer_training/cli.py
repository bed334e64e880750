"""What every fer-* command shares: a --help with the module doc as written and each option's default, and
one-line errors."""

from __future__ import annotations

import argparse


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: what a one-line CLI error shows of an exception whose
    text (Keras, ONNX Runtime) can run to pages."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no detail'}"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to every option that has a default (not for None or False: an option
    whose default is the profile's, or a flag, says so in its own help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"

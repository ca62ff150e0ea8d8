"""Expected problems and how every problem reads: one Qt-free place for the CLI, the GUI and scripts.

An *expected* problem is one with what the user gave (a file, a value, a name, a checkpoint): it is
stated in one sentence, without a traceback. Anything else is a bug in lstmviz: the GUI says "Something
went wrong" and keeps the traceback for the details, the CLI lets it propagate.

``expected_errors()`` is the tuple to catch: ``ExpectedError`` (the base for lstmviz's own problems),
the built-in exceptions that analysis code raises for bad input (``ValueError``, ``KeyError``,
``IndexError``, ``OSError``) and the error types of lstmviz's packages (a damaged recording, an unknown
registry name, a checkpoint that does not load). ``describe(exc)`` is the sentence, the same wherever it
is shown (a ``KeyError``'s message without the quotes ``str(KeyError)`` adds).
"""

from __future__ import annotations

import sys

__all__ = ["ExpectedError", "describe", "expected_errors", "is_expected", "one_line"]


class ExpectedError(Exception):
    """A problem with the input that is stated in words (its text is the sentence), never a traceback."""


#: built-in exceptions that lstmviz raises for input it cannot use
_BUILTIN = (ValueError, KeyError, IndexError, OSError)
#: error types of lstmviz's packages that mean "this input cannot be used": (module, class name). Looked
#: up only in modules already imported (an error of a module that was never imported cannot have been
#: raised), so asking costs no import and this module depends on none of them.
_PACKAGE_ERRORS = (
    ("lstmviz.registry", "UnknownName"),  # a KeyError already; RecordingError and CheckpointError are ExpectedErrors
)


def expected_errors() -> tuple[type[BaseException], ...]:
    """The exception types that state a problem with the input (see the module docstring)."""
    errors: list[type[BaseException]] = [ExpectedError, *_BUILTIN]
    for module_name, class_name in _PACKAGE_ERRORS:
        module = sys.modules.get(module_name)
        error = getattr(module, class_name, None) if module is not None else None
        if isinstance(error, type) and issubclass(error, BaseException) and error not in errors:
            errors.append(error)
    return tuple(errors)


def is_expected(exc: BaseException) -> bool:
    return isinstance(exc, expected_errors())


def describe(exc: BaseException) -> str:
    """The sentence for ``exc``: its message (a ``KeyError``'s without repr quotes), or its type's name."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = str(exc)
    return text.strip() or type(exc).__name__


def one_line(exc: BaseException) -> str:
    """``describe(exc)`` on one line (a terminal's message)."""
    return " ".join(describe(exc).split())

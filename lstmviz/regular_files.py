"""Files a user names must be regular files.

Reading a FIFO blocks until someone writes into it, reading ``/dev/zero`` never ends, and replacing
a device with ``os.replace`` (``--out /dev/null`` run as root) damages the system. Every reader and
writer of user files (recordings, checkpoints) asks here first and turns the answer into its own
error, so the rules and their words live in one place.

Paths are judged by what they point to: a symlink to ``/dev/null`` is a character device. The check
of a path is done with ``os.stat`` before the file is opened; :func:`read_regular_file` instead opens
first (without blocking) and checks the open file, so nothing can be swapped in between.
"""

from __future__ import annotations

import os
import stat

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """``read_regular_file`` did not read the path; ``problem`` says why in words.

    ``size`` is the file's size when it was refused for being larger than ``max_bytes`` (else None).
    """

    def __init__(self, problem: str, size: int | None = None):
        super().__init__(problem)
        self.problem = problem
        self.size = size


def kind_of(mode: int) -> str:
    """``"a directory"``, ``"a FIFO (named pipe)"``, ... for a non-regular ``st_mode``."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "a special file"


def input_problem(path: str | os.PathLike, noun: str = "file") -> str | None:
    """Why ``path`` cannot be read as a regular ``noun`` file, or None when it can (a regular, readable file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file" if not os.path.islink(path) else "no such file (a symlink to a missing file)"
    except PermissionError:
        return "permission denied: the file cannot be read"
    except OSError as e:  # ELOOP, ENOTDIR, ENAMETOOLONG ...
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISDIR(st.st_mode):
        return f"is a directory, not a {noun} file"
    if not stat.S_ISREG(st.st_mode):
        return f"is {kind_of(st.st_mode)}, not a regular file; a {noun} is read only from a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied: the file cannot be read"
    return None


def output_problem(path: str | os.PathLike) -> str | None:
    """Why a finished file must not be renamed onto ``path``, or None (nothing there, or a regular file).

    A symlink is judged by its target: a link to a device is refused; a link to a regular file or a
    dangling link is replaced by the new file (the link itself, not its target).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:  # a parent that is not a directory, a symlink loop ...
        return f"cannot be checked ({e.strerror or e})"
    if stat.S_ISREG(st.st_mode):
        return None
    return f"exists and is {kind_of(st.st_mode)}, not a regular file; give the name of a new or regular file"


def read_regular_file(path: str | os.PathLike, *, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file (checked on the open file, no race).

    ``max_bytes``: refuse a larger file before reading it (``FileRefused`` with its ``size``).
    Raises ``FileNotFoundError`` for a missing path and ``FileRefused`` for everything else.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO without a writer returns at once
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise FileRefused(input_problem(path) or "is a directory") from None
    except PermissionError:
        raise FileRefused("permission denied: the file cannot be read") from None
    except OSError as e:
        raise FileRefused(f"cannot be read ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileRefused("is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"is {kind_of(st.st_mode)}, not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileRefused(f"the file is {st.st_size} bytes, more than the {max_bytes} allowed", st.st_size)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as e:
        raise FileRefused(f"cannot be read ({e.strerror or e})") from None
    finally:
        os.close(fd)

"""How much memory this process can still use, for refusing absurd sizes before allocating them.

A file or a config that declares a size (a model with ``hidden_size=2**20``, a checkpoint archive
that unpacks to 30 GB) is checked against :func:`available_bytes` first, so the user reads one
sentence instead of an allocation traceback or an OOM kill. Only the standard library is used.
"""

from __future__ import annotations

import os
from pathlib import Path


def available_bytes() -> int | None:
    """Bytes this process can still allocate, or None when the system does not say.

    The smallest of: the memory the kernel reports available (``MemAvailable``; free physical pages
    where that is unknown), the cgroup's limit minus its usage (containers), and the address-space
    limit (``ulimit -v``) minus what the process maps already.
    """
    candidates = [_system_available(), _cgroup_available(), _address_space_left()]
    known = [c for c in candidates if c is not None]
    return max(0, min(known)) if known else None


def format_bytes(n: float) -> str:
    """``1536 -> "1.5 KB"``, ``1.7e13 -> "17 TB"`` (decimal units, 2 significant digits)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            if unit == "bytes":
                return f"{n:.0f} bytes"
            return f"{n:.2g} {unit}" if abs(n) < 10 or abs(n) >= 1e6 else f"{n:.0f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _system_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
            return None
        return int(limit) - usage
    return None


def _address_space_left() -> int | None:
    try:
        import resource  # POSIX only

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, ValueError, OSError, AttributeError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        mapped = 0
    return soft - mapped

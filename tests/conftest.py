"""Shared test configuration: Qt renders offscreen, torch stays on few threads."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")
# torch's OpenMP threads spin while waiting; on a shared 2-core machine that collapses throughput
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

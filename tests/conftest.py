"""Shared test configuration: Qt renders offscreen, torch stays on few threads."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

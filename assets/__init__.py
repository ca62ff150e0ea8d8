"""Bundled assets: the demo recording (demo/) and icons."""

"""Family ``graph``: models that read one graph and classify its nodes or the graph (filled in by issue 15)."""

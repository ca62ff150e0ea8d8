"""Graph engines (one operator or model per file) and the graph operators they share."""

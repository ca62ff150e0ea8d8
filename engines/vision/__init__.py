"""Image engines (family ``image``)."""

"""wheelfarm's package index: a PEP 503/691 simple index with twine-compatible uploads."""

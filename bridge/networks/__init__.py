"""Network connectors, one package per network."""

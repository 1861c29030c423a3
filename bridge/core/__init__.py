"""The network-agnostic core. Nothing in this package imports a network library."""

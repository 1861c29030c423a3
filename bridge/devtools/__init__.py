"""Tools for development: a local Synapse for the demo and the tests."""

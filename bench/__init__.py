"""Benchmarks and the chaos run: tools that start real components and measure them."""

"""Tools around the method: the benchmark, the start-up timing and the reference loop."""

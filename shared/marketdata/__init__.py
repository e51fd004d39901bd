"""Daily bars: the bars file format, the local bar store, the synthetic sample and the port."""

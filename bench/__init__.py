"""Benchmark: the consumer against the raw queue/table API ceiling (`python -m bench`)."""

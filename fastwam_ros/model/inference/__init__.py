"""Observation -> action chunk: FastWAMPolicy, the fast sampler, real-time chunking."""

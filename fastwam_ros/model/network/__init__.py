"""The Fast-WAM network: the MoT of the video and action experts, attention masks, RoPE, flow matching, the
training loss and the real-time-chunking guidance of the sampler (``rtc``: NumPy only, importable without torch)."""

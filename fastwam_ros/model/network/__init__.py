"""The Fast-WAM network: the MoT of the video and action experts, attention masks, RoPE, flow matching."""

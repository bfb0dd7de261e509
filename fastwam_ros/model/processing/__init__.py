"""Between data and the network: the processor (normalisation, frame checks, VAE, instruction cache), the VAE and text encoders."""

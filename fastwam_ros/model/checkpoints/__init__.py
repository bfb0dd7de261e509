"""Reading and writing weights: official checkpoints, Wan2.2 weights, policy directories, file checks."""

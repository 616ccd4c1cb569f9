"""Fitting the networks: sampler, quantisation schedule, divergence guard, training loop, state."""

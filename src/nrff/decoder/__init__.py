"""The decoder: reading a stream, caching key frames, rendering frames at any (t, H, W)."""

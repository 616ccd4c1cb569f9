"""The encoder: plan the GOPs and sizes, code the key frames, fit the fields, write the container."""

"""Evaluation: metrics, conventional anchors, rate-distortion sweeps and reports, figures, the demo."""

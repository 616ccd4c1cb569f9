"""Reading and writing video frames (image folders, containers, raw YUV, Y4M)."""

from nrff.video.reader import FrameRange, VideoInfo, VideoReader, open_video, parse_size

__all__ = ["FrameRange", "VideoInfo", "VideoReader", "open_video", "parse_size"]

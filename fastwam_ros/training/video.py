"""Video files frame by frame with PyAV (an optional dependency: ``pip install av`` or ``fastwam_ros[lerobot]``).

Reading: a frame is decoded only when a sample asks for it (seek to the keyframe before it, decode forward;
consecutive requests continue without seeking), so a dataset's videos are never held in memory. Each process keeps a
few open containers (DataLoader workers open their own). AV1 (LeRobot's default), H.264, HEVC and MPEG-4 decode
through FFmpeg inside PyAV -- OpenCV's build often has no AV1 decoder.

Writing: :class:`VideoWriter` encodes uint8 RGB frames (yuv420p) for the LeRobot export.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError

MAX_OPEN = 4  # open containers per process


def require_av():
    """The ``av`` module, or a DatasetError saying how to install it."""
    try:
        import av  # type: ignore[import-not-found]
    except ImportError as exc:
        raise DatasetError("reading or writing LeRobot videos needs PyAV, which is not installed: pip install av "
                           "(or pip install 'fastwam_ros[lerobot]')") from exc
    return av


class _Reader:
    """One open video stream with a decode cursor."""

    def __init__(self, path: str, fps: float) -> None:
        av = require_av()
        self.path, self.fps, self.pid = path, float(fps), os.getpid()
        try:
            self.container = av.open(path)
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors come in many types
            raise DatasetError(f"cannot open video {path}: {exc}") from exc
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "SLICE"  # frame threading buffers frames: slower for seek + decode one
        from av.video.reformatter import VideoReformatter

        self.reformatter = VideoReformatter()  # one per stream: ~15x faster than a new conversion per frame
        self.time_base = self.stream.time_base or Fraction(1, 90000)
        self.start = self.stream.start_time or 0
        self._iter = None
        self._next = None  # index of the frame the iterator yields next

    def _index(self, frame) -> int:
        pts = frame.pts if frame.pts is not None else frame.dts
        return int(round(float((pts - self.start) * self.time_base) * self.fps))

    def _seek(self, index: int) -> None:
        target = self.start + int(index / self.fps / float(self.time_base))
        self.container.seek(max(target, self.start), stream=self.stream, backward=True, any_frame=False)
        self._iter = self.container.decode(self.stream)
        self._next = None

    def frame(self, index: int) -> np.ndarray:
        if self._iter is None or self._next is None or index < self._next or index > self._next + 2 * self.fps:
            self._seek(index)
        for attempt in range(2):
            for frame in self._iter:
                k = self._index(frame)
                self._next = k + 1
                if k == index or (k > index and attempt == 1):
                    return self.reformatter.reformat(frame, format="rgb24").to_ndarray()
                if k > index:  # the seek landed after the frame (no keyframe before it): decode from the start
                    break
            else:
                raise DatasetError(f"{self.path} has no frame {index} (the video ends before it)")
            self.container.seek(self.start, stream=self.stream, backward=True, any_frame=False)
            self._iter = self.container.decode(self.stream)
        raise DatasetError(f"cannot decode frame {index} of {self.path}")

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001
            pass


_READERS: OrderedDict[tuple[str, float], _Reader] = OrderedDict()


def _reader(path: str, fps: float) -> _Reader:
    key = (path, float(fps))
    r = _READERS.get(key)
    if r is not None and r.pid != os.getpid():  # inherited through fork: open our own
        _READERS.pop(key)
        r = None
    if r is None:
        r = _READERS[key] = _Reader(path, fps)
        while len(_READERS) > MAX_OPEN:
            _READERS.popitem(last=False)[1].close()
    _READERS.move_to_end(key)
    return r


def decode_video_frame(item: tuple[str, int, float]) -> np.ndarray:
    """FrameSequence decoder for ``(path, frame index, fps)`` items: uint8 HxWx3 RGB."""
    path, index, fps = item
    return _reader(str(path), float(fps)).frame(int(index))


def video_num_frames(path: str | Path) -> int:
    """Number of frames (container header when it says, else by demuxing packets without decoding)."""
    av = require_av()
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"video file {path} not found")
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if s.frames:
            return int(s.frames)
        return sum(1 for p in c.demux(s) if p.size)


class VideoWriter:
    """uint8 HxWx3 RGB frames -> a video file (yuv420p; H and W must be even) at ``fps``."""

    def __init__(self, path: str | Path, fps: float, height: int, width: int, codec: str = "libsvtav1",
                 crf: int | None = 30, gop: int = 2) -> None:
        av = require_av()
        if height % 2 or width % 2:
            raise DatasetError(f"video frames must have even height and width for yuv420p, got {height}x{width}")
        if codec not in av.codecs_available:
            raise DatasetError(f"this PyAV/FFmpeg build has no {codec!r} encoder; choose one of "
                               f"libsvtav1, libaom-av1, libx264, h264, mpeg4 that it has")
        if codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration at level 3 (info)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.container = av.open(str(path), mode="w")
        rate = Fraction(fps).limit_denominator(1000)
        options: dict[str, Any] = {"g": str(gop)}
        if crf is not None:
            options["crf"] = str(crf)
        self.stream = self.container.add_stream(codec, rate=rate, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = int(width), int(height), "yuv420p"
        self.time_base = Fraction(rate.denominator, rate.numerator)  # one tick per frame
        self.stream.codec_context.time_base = self.time_base
        self._av = av
        self.count = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
        frame.pts = self.count
        frame.time_base = self.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()

"""Typed errors of the runtime. Each names what was wrong and what to do about it."""


class FerError(Exception):
    """Base class of every error fer_perception raises on purpose."""


class ImageConversionError(FerError, ValueError):
    """A sensor_msgs Image/CompressedImage that cannot be turned into pixels (or back).

    ``kind`` is a short machine-readable reason (e.g. ``"truncated_data"``), so the node can
    count bad input by kind and log each kind once.
    """

    def __init__(self, message: str, kind: str = "invalid_image"):
        super().__init__(message)
        self.kind = kind


class ModelLoadError(FerError):
    """A model file that is missing, unreadable, corrupt or breaks the model contract."""


class BackendUnavailableError(FerError):
    """An inference backend that was asked for by name but cannot run on this machine."""


class InputShapeError(FerError, ValueError):
    """A batch of faces whose shape or dtype does not match the model contract (N x 48 x 48 x 1)."""


class DetectorError(FerError):
    """A face detector that cannot be created or fails on a frame."""

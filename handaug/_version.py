"""The installed version of handaug, written into every exported checkpoint."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("handaug")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

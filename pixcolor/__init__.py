"""PixColor: Pixel Recursive Colorization (Guadarrama et al. 2017)."""

from pixcolor.model import PixColor

__all__ = ["PixColor"]
__version__ = "0.1.0"

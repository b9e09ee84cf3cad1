"""PixColor: Pixel Recursive Colorization (Guadarrama et al. 2017).

``from pixcolor import PixColor`` loads the model code on first use, so light users of the
package (``pixcolor.color``, ``pixcolor.io``) do not pay for it.
"""

__all__ = ["PixColor"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "PixColor":
        from pixcolor.colorizer import PixColor

        return PixColor
    raise AttributeError(f"module 'pixcolor' has no attribute {name!r}")

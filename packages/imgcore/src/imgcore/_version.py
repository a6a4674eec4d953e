"""imgcore's version, in a module of its own: imgcore's modules import it from here, since
importing the package itself (which re-exports them all) would close an import cycle."""

__version__ = "0.1.0"

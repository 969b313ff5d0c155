"""The package's version: a leaf that nothing circular depends on, read by the package's
`__init__`, the command line, the web app and the downloader's User-Agent."""

__version__ = "0.1.0"

"""The one place fastjobs' version is written (read by setuptools and ``fastjobs --version``)."""

__version__ = "0.1.0"

"""Package version; package.xml and setup.py must agree (checked by test/test_package_metadata.py)."""

__version__ = "0.1.0"

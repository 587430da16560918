"""A test-double ``zeek`` executable (``zeek.py``) and helpers to install it (``fixture.py``)."""

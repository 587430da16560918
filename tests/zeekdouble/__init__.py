"""A test-double ``zeek`` executable (the package ``zeek``) and helpers to install it
(``fixture.py``)."""

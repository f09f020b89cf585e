"""The ``synthaug`` command line: a thin front end over the library (see ``main.py``)."""

"""memlab: a JSON-configured parameter-grid runner for memorization experiments."""
__version__ = "0.1.0"

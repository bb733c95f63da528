"""The command-line entry points: run.py, plot.py and data.py are thin shims over these."""

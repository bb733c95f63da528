"""Trial modules: each defines PARAMS and trial(params) -> dict (see memlab.config.TRIALS)."""

"""A trial that does nothing but return a value: what the runner's overhead is measured on."""


def trial(params: dict) -> dict:
    return {"y": params["x"] * 2}

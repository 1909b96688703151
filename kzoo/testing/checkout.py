"""Where the source checkout is: tests and benchmarks read its `recipes/` and run
the command line from its root.

kzoo's tests run from a checkout with kzoo installed in editable mode (`make
install`), so the checkout's root is two folders above this package.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def recipe_path(name):
    """The path of `recipes/NAME.yaml` in the checkout.

    Example:
    >>> os.path.relpath(recipe_path("gpt_tiny"), ROOT)
    'recipes/gpt_tiny.yaml'
    """
    return os.path.join(ROOT, "recipes", f"{name}.yaml")

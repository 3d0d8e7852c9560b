"""Whether the full package can load: Keras and TensorFlow installed.

A deployer's service may have neither: there, `import keras_mtl` loads nothing
else and only the REST client, `keras_mtl.serving.client` (numpy and the
standard library), is usable.
"""

import importlib.util


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # (an import hook refusing it)
        return False


FULL = _installed("keras") and _installed("tensorflow")

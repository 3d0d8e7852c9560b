from setuptools import find_packages, setup

setup(
    name="keras-mtl",
    version="0.1.0",
    description="Keras 3 / TensorFlow model zoo for multi-task recommendation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The project's one home (the notebooks install from it at a release tag,
    # `v` + version: keras-mtl is not on the package index).
    url="https://github.com/keras-mtl/keras-mtl",
    packages=find_packages(include=["keras_mtl", "keras_mtl.*"]),
    # The command's launcher: parses and sets the log environment before
    # importing keras_mtl (and TensorFlow).
    py_modules=["keras_mtl_cli"],
    package_data={"keras_mtl.datasets": ["*.json"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.10,<4",
        "keras-rs>=0.4",
        "numpy",
        "pandas",
        "tensorflow-datasets>=4.9",
    ],
    extras_require={
        "tests": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "ruff",
            "matplotlib",
            "tensorflow-serving-api>=2.16,<2.22",
            # The notebooks run in a real Jupyter kernel (tests/test_notebooks.py).
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6.29",
        ],
        # TF Serving's protos and gRPC stubs: warm-up records, gRPC requests.
        # (It needs the `tensorflow` package; do not add `tensorflow-cpu`.)
        "serving": ["tensorflow-serving-api>=2.16,<2.22"],
        "notebooks": ["matplotlib", "jupyter"],
        # The other Keras backends (select one with KERAS_BACKEND=jax / torch).
        "backends": ["jax", "torch"],
    },
    entry_points={"console_scripts": ["keras-mtl=keras_mtl_cli:main"]},
)

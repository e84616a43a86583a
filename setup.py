"""Install with ``pip install -e .[test]`` (``make test`` does it for you)."""
from setuptools import find_packages, setup

setup(
    name="gluon-resnetv2",
    version="0.1.0",
    description="Reference MXNet Gluon implementation of 'Identity Mappings in Deep Residual Networks' (ResNet v2)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gluon_resnetv2", "gluon_resnetv2.*"]),
    python_requires=">=3.11",
    install_requires=[
        "mxnet==1.9.1",
        "gluoncv",
        # mxnet 1.9.1 uses np.bool & co., removed in numpy 1.24; on Python 3.12 (no numpy<1.24 wheel)
        # gluon_resnetv2._compat restores the aliases instead.
        "numpy<1.24; python_version<'3.12'",
        "numpy>=1.24,<2; python_version>='3.12'",
        # mxnet imports distutils, which Python 3.12 no longer ships.
        "setuptools; python_version>='3.12'",
        "matplotlib",
        "tqdm",
    ],
    extras_require={
        # ruff: `make lint`; pytest-timeout: a hung subprocess test fails instead of stalling CI.
        "test": ["pytest", "pytest-timeout", "ruff"],
        # mxnet 1.9.1's ONNX exporter imports onnx.mapping, removed in onnx 1.19 (and onnx 1.19 cannot
        # even be imported with numpy<1.24, which breaks `import mxnet` itself): pin below it.
        "onnx": ["onnx>=1.14,<1.19", "onnxruntime>=1.16"],
    },
    entry_points={"console_scripts": ["gluon-resnetv2=gluon_resnetv2.cli:main"]},
)

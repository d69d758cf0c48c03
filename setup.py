"""The one compiled module; everything else about the package is in pyproject.toml.

detectors/_kernels.c holds the motion kernel's point-wise stages and the texture test at the changed pixels (why
C: see its header). It is compiled without contraction into fused multiply-adds, which would round differently
from the cv2 calls it mirrors.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "detectors._kernels",
            sources=["detectors/_kernels.c"],
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-trapping-math"],
            libraries=["m"],
        )
    ]
)

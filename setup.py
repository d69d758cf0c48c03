"""The one compiled module; everything else about the package is in pyproject.toml.

detectors/_kernels.c holds the detectors' compiled stages (why C: see its header). No contraction into fused
multiply-adds, which would round differently from the cv2 calls they mirror; no trapping math, so that gcc may
vectorize float comparisons (it changes no result: nothing here reads floating-point flags).
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

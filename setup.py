"""Builds callgate's optional native core; everything else is in pyproject.toml.

``cffi_modules`` compiles ``callgate.native._core`` from ``callgate/native/csrc`` (build
script: ``callgate/native/_build.py``). The core is optional (setuptools' ``optional``
extensions): when it cannot be built - no C compiler, no Python headers, a compiler that
rejects it - the install still succeeds, callgate runs the pure-Python twins, and the
build prints why. pip shows a successful build's output only with ``-v``, so callgate
also warns (``NativeFallbackWarning``) the first time a twin stands in, and
``python -m callgate.native`` shows the active path.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# What a missing or failing compiler raises (CompileError and LinkError are CCompilerErrors).
BUILD_FAILURES = (CCompilerError, ExecError, PlatformError)


class OptionalBuildExt(build_ext):
    """Every extension optional, and a failed one reported plainly."""

    def run(self) -> None:
        for ext in self.extensions:
            ext.optional = True
        super().run()

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except BUILD_FAILURES as exc:
            bar = "=" * 78
            print(f"\n{bar}\nWARNING: callgate's native core ({ext.name}) was not built:\n"
                  f"  {exc}\n"
                  "callgate will run its pure-Python twins: deadlines (Limits.timeout) then\n"
                  "need the GIL, so a busy host delays them. Install a C compiler and the\n"
                  "Python headers, then reinstall; `python -m callgate.native` shows the\n"
                  f"active path.\n{bar}\n", file=sys.stderr, flush=True)
            raise  # setuptools skips an optional extension that failed


setup(
    cffi_modules=["callgate/native/_build.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)

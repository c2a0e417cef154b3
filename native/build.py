"""cffi out-of-line API build of the C audio core into ``gateway._native``.

The build is data: sources are every ``native/src/*.c``, the cdef is every ``native/cdef/*.cdef``
(concatenated in name order), flags below. Environment switches:
  CVG_DEBUG=1          -O0 -g, assertions on (for gdb)
  CVG_COUNT_ALLOCS=1   compile the allocation counter in (tests prove zero allocations per frame)
  CVG_PORTABLE=1       no -march tuning (the default builds for the baseline ISA + runtime dispatch)
"""
import os
import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

ffibuilder = FFI()
ffibuilder.cdef("\n".join(p.read_text() for p in sorted((HERE / "cdef").glob("*.cdef"))))

sources = sorted(os.path.relpath(p, ROOT) for p in (HERE / "src").glob("*.c"))
headers = sorted((HERE / "include").glob("*.h"))

cflags = ["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
macros = []
if os.environ.get("CVG_DEBUG"):
    cflags += ["-O0", "-g"]
else:
    cflags += ["-O3", "-ftree-vectorize", "-fno-math-errno"]
    macros.append(("NDEBUG", "1"))
if os.environ.get("CVG_COUNT_ALLOCS"):
    macros.append(("CVG_COUNT_ALLOCS", "1"))

ffibuilder.set_source(
    "gateway._native",
    "".join(f'#include "{h.name}"\n' for h in headers),
    sources=sources,
    include_dirs=[os.path.relpath(HERE / "include", ROOT)],
    define_macros=macros,
    extra_compile_args=cflags,
    libraries=["m"],
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(tmpdir=str(ROOT / "native" / "build"), verbose=True)

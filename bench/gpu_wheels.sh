#!/bin/bash
# Fill .whl/ with what bench/gpu_lease.sh needs on a leased GPU machine whose image (Python 3.12, torch with
# CUDA) lacks these packages and cannot reach a registry: wheels for CPython 3.12 on x86-64 Linux, and cobs'
# pure-Python fallback (cobs publishes no wheel for 3.12; without its C extension it uses the Python one).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
mkdir -p .whl
plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
for p in constriction==0.5.0 jiwer==4.0.0 rapidfuzz==3.14.6 google-crc32c==1.9.0 soundfile==0.14.0 cffi==2.1.1 \
         pycparser==3.12 soxr==1.1.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $plat -d .whl "$p"
done
site=$(.venv/bin/python -c "import cobs, os; print(os.path.dirname(cobs.__file__))")
rm -rf .whl/cobs && cp -r "$site" .whl/cobs && find .whl/cobs \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
ls .whl

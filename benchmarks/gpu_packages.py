"""The Python packages the GPU check needs, which are missing, and the wheels that bring them.

    python -m benchmarks.gpu_packages --missing            # the distributions missing here
    python -m benchmarks.gpu_packages --download .whl      # wheels for the GPU machine (needs PyPI)

The GPU machine (one H200, Python 3.12, x86-64, no internet) has the packages of
``benchmarks/gpu_machine.txt``: CUDA jax, flax, optax, orbax-checkpoint, torch,
pytest and more, no TensorFlow. ``--download DIR`` fetches, for that machine
(CPython 3.12, manylinux x86-64), exactly the needed distributions it lacks and
their own dependencies that it lacks, one wheel each, and checks that the
folder stays under the 64 MiB that travel with a run. ``gpu_check.sh`` installs
what is missing from that folder, with pip, offline.
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.util
import pathlib
import re
import subprocess
import sys
import zipfile

HERE = pathlib.Path(__file__).parent
# Import name -> distribution, for everything the check imports.
NEEDED = {
    'jax': 'jax', 'flax': 'flax', 'optax': 'optax', 'orbax.checkpoint': 'orbax-checkpoint',
    'ml_collections': 'ml_collections', 'absl': 'absl-py', 'yaml': 'PyYAML', 'numpy': 'numpy',
    'PIL': 'pillow', 'tqdm': 'tqdm', 'png': 'pypng', 'tifffile': 'tifffile', 'torch': 'torch',
    'pytest': 'pytest',
}
LIMIT = 64 * 2**20  # what travels with one run of the GPU machine
TARGET = {'python_version': '3.12', 'python_full_version': '3.12.3', 'sys_platform': 'linux',
          'platform_system': 'Linux', 'platform_machine': 'x86_64', 'os_name': 'posix',
          'implementation_name': 'cpython', 'platform_python_implementation': 'CPython',
          'extra': ''}  # the GPU machine, for requirement markers
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_17_x86_64',
             'manylinux2014_x86_64', 'manylinux1_x86_64')


def canonical(name: str) -> str:
  return re.sub(r'[-_.]+', '-', name).lower()


def importable(module: str) -> bool:
  """Whether ``module`` can be imported; False (not an error) when a parent package is missing."""
  try:
    return importlib.util.find_spec(module) is not None
  except ModuleNotFoundError:  # find_spec('orbax.checkpoint') without orbax
    return False


def missing() -> list[str]:
  """The needed distributions that cannot be imported here."""
  return [dist for module, dist in NEEDED.items() if not importable(module)]


def gpu_machine() -> set[str]:
  """The distributions the GPU machine has (canonical names)."""
  lines = (HERE / 'gpu_machine.txt').read_text().splitlines()
  return {canonical(line) for line in lines if line.strip() and not line.startswith('#')}


def requirements(wheel: pathlib.Path) -> set[str]:
  """The distributions a wheel requires on the GPU machine (its markers evaluated there)."""
  from packaging.requirements import Requirement

  with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    metadata = email.parser.Parser().parsestr(z.read(name).decode())
  found = set()
  for line in metadata.get_all('Requires-Dist') or []:
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate(TARGET):
      found.add(canonical(req.name))
  return found


def download(folder: pathlib.Path) -> list[pathlib.Path]:
  """Wheels for everything the GPU machine lacks, dependencies included; returns them."""
  have = gpu_machine()
  wanted = [d for d in map(canonical, NEEDED.values()) if d not in have]
  fetched: dict[str, pathlib.Path] = {}
  folder.mkdir(parents=True, exist_ok=True)
  while wanted:
    dist = wanted.pop()
    if dist in fetched:
      continue
    before = set(folder.glob('*.whl'))
    platform_args = [arg for p in PLATFORMS for arg in ('--platform', p)]
    subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:',
                    '--python-version', '3.12', '--implementation', 'cp', *platform_args,
                    '-d', str(folder), dist], check=True)
    new = set(folder.glob('*.whl')) - before
    wheel = next(iter(new)) if new else next(p for p in folder.glob('*.whl')
                                              if canonical(p.name.split('-')[0]) == dist)
    fetched[dist] = wheel
    wanted += [d for d in requirements(wheel) if d not in have and d not in fetched]
  return sorted(fetched.values())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--missing', action='store_true', help='print the distributions missing here')
  parser.add_argument('--download', type=pathlib.Path, metavar='DIR',
                      help="download the GPU machine's missing wheels into DIR")
  args = parser.parse_args()
  if args.missing:
    print(' '.join(missing()))
  if args.download:
    wheels = download(args.download)
    size = sum(w.stat().st_size for w in wheels)
    for w in wheels:
      print(w.name)
    print(f'{len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.download}')
    if size > LIMIT:
      sys.exit(f'error: {size / 2**20:.1f} MiB is more than the 64 MiB that travel with a run')


if __name__ == '__main__':
  main()

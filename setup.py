"""Install mmdms. The tested stack is pinned in requirements/constraints.txt;
``tools/setup_env.sh`` builds the whole environment (mmcv with ops included)."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name: str) -> list:
    """Requirement lines of requirements/<name>.txt, without comments and blanks."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def read_version() -> str:
    namespace: dict = {}
    with open(osp.join(HERE, 'mmdms', 'version.py')) as f:
        exec(compile(f.read(), 'mmdms/version.py', 'exec'), namespace)
    return namespace['__version__']


setup(
    name='mmdms',
    version=read_version(),
    description='Differentiable Model Scaling (DMS), RLNAS and PGNAS on MMEngine',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs', 'projects')),
    python_requires='>=3.8',
    install_requires=read_requirements('runtime'),
    extras_require={
        'mim': read_requirements('mminstall'),
        'tests': read_requirements('tests'),
        'optional': read_requirements('optional'),
    },
    license='Apache License 2.0',
    zip_safe=False,
)

"""Is this Python new enough, and is the venv still good? `make demo` asks before anything else.

    python3 tools/python_check.py [--venv .venv-demo]

The minimum is pyproject.toml's ``requires-python``. Too old: one message saying which Python
was found, what is needed and how to point make at another (``make demo PYTHON=python3.12``),
exit 2. With ``--venv``: a venv whose interpreter is older than the minimum, or gone (a Python
upgraded or removed since), is deleted so that make builds it again with this Python.

Runs under any Python 3 (it is the one thing that must, to say it is too old): no annotations
that older versions cannot evaluate, nothing outside the standard library.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXIT_TOO_OLD = 2
INSTALL = (
    "install one (https://www.python.org/downloads/, `brew install python@3.12`, "
    "`sudo apt install python3.12`, or `uv python install 3.12`)"
)


def minimum(repo: Path = REPO) -> tuple:
    text = (repo / "pyproject.toml").read_text()
    found = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text, re.MULTILINE)
    if not found:
        raise SystemExit('pyproject.toml has no requires-python = ">=X.Y"')
    return int(found.group(1)), int(found.group(2))


def dotted(version: tuple) -> str:
    return ".".join(str(part) for part in version)


def venv_version(venv: Path) -> tuple:
    """(major, minor) of the venv's interpreter; () when it cannot run."""
    python = venv / "bin" / "python"
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(int(part) for part in out.strip().split("."))


def main(argv: list = None) -> int:  # noqa: RUF013 - `list | None` fails before Python 3.10
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", type=Path, help="a venv to rebuild if an older Python made it")
    args = parser.parse_args(argv)
    needed = minimum()
    have = tuple(sys.version_info[:2])
    if have < needed:
        print(
            f"Python {dotted(needed)} or newer is needed (pyproject.toml); {sys.executable} is "
            f"{sys.version.split()[0]}. {INSTALL[0].upper()}{INSTALL[1:]}, then run "
            "`make demo PYTHON=python3.12` (or whichever name it has).",
            file=sys.stderr,
        )
        return EXIT_TOO_OLD
    print(f"Python {sys.version.split()[0]} ({sys.executable}): {dotted(needed)}+ needed, ok")
    if args.venv is not None and args.venv.exists():
        made_by = venv_version(args.venv)
        if made_by < needed:
            why = f"Python {dotted(made_by)}" if made_by else "a Python that no longer runs"
            print(f"{args.venv} was made by {why}: rebuilding it with {sys.executable}")
            shutil.rmtree(args.venv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stand-in for the pip bootstrap script ansible-test downloads from
ci-files.testing.ansible.com, which is not reachable from our machines.

ansible-test runs it inside each fresh sanity venv with pip's install arguments (for
example `--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel`). Like the
real get-pip.py it runs pip from a wheel, here the official pip wheel from PyPI that
scripts/ansible-test.sh saved beside this file, and installs what was asked for.
"""

import glob
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
wheels = sorted(glob.glob(os.path.join(here, "pip-*-py3-none-any.whl")))
if not wheels:
    sys.exit("no pip wheel next to %s; run scripts/ansible-test.sh again" % __file__)
sys.path.insert(0, wheels[-1])

from pip._internal.cli.main import main  # noqa: E402  (importable only after the path insert)

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall"] + args))

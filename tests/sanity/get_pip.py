"""Stand-in for the get-pip script that ansible-test downloads.

ansible-test bootstraps pip in the virtual environments of its sanity tests
by running a get-pip script fetched from the internet. This one needs no
network: it installs pip with ensurepip, then installs the packages
ansible-test asked for through the machine's usual package index.
"""

import os
import subprocess
import sys

# ensurepip points PIP_CONFIG_FILE at /dev/null, which would hide the
# machine's pip settings (its index and certificates) from the install below.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
environment = dict(os.environ)
environment.pop("PIP_CONFIG_FILE", None)

arguments = [argument for argument in sys.argv[1:] if argument not in ("--no-setuptools", "--no-wheel")]
if arguments:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + arguments, env=environment)

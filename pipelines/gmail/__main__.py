"""`python -m pipelines.gmail`: sync every Gmail connection (the sandbox ones by default)."""

import sys

from pipelines.gmail import DATASET_NAME, SOURCE_NAME, gmail_source
from pipelines.mail_common.standalone import main

if __name__ == "__main__":
    sys.exit(main("gmail", gmail_source, SOURCE_NAME, DATASET_NAME))

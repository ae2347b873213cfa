"""`python -m pipelines.outlook`: sync every Outlook connection (the sandbox ones by default)."""

import sys

from pipelines.mail_common.standalone import main
from pipelines.outlook import DATASET_NAME, SOURCE_NAME, outlook_source

if __name__ == "__main__":
    sys.exit(main("outlook", outlook_source, SOURCE_NAME, DATASET_NAME))

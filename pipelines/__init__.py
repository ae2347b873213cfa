"""The platform's Python code. Importing it makes the process private (umask 077): every entry point (the CLI,
Dagster's code servers and run workers loading `definitions`, the sources run on their own, the tests)
imports this package before it writes anything, so every file it writes is 0600 and every folder 0700."""

from pipelines.paths import private_process

private_process()

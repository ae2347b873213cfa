"""What the Gmail and Outlook sources share: retries, request counting, turning
plaintext rows into protected arrow batches, and running one connection's sync with dlt.

Each provider package only declares its tables and speaks its API; everything that is the same for both
lives here once (the design's rule: shared machinery in one place, sources never import each other).
"""

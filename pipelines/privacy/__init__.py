"""Privacy engine for the GTG CRM data platform.

The privacy policy promises that "all data is encrypted and visible only within
your personal workspace" and that personal data is erased on request. This
package holds the pieces that keep those promises without any orchestration
dependency (Dagster resources wrap them elsewhere):

* ``keyring`` - field-level encryption with one key per workspace and one key
  per data subject, blind indexes for equality lookups on encrypted columns,
  and crypto-shredding (erasure by destroying keys).
"""

"""Dagster assets: ingestion (dlt), and the checks that guard them."""

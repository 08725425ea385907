"""Extract-load (dlt) and the commands that drive the dbt project."""

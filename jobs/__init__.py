"""Ready job scripts for `mr run`; each file is a job (see README, "The job API")."""

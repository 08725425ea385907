# The two commands of the README. Everything else is reachable through `.venv/bin/el`.
.PHONY: demo test lint bootstrap clean airflow

bootstrap:
	@scripts/bootstrap.sh

## demo: set up, then simulate several days, load, build, test and report on the embedded demo
demo: bootstrap
	.venv/bin/shopsim demo

## test: set up, then lint and run the whole test suite
test: bootstrap
	scripts/test.sh

## airflow: install the airflow extra, start Airflow standalone on 127.0.0.1:8080 with the shop_elt DAG
airflow:
	@scripts/airflow.sh

clean:
	rm -rf .venv data target logs dbt_packages .dbt_core

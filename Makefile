# The two commands of the README. Everything else is reachable through `.venv/bin/el`.
.PHONY: demo test lint bootstrap clean

bootstrap:
	@scripts/bootstrap.sh

## demo: set up, then simulate several days, load, build, test and report on the embedded demo
demo: bootstrap
	.venv/bin/shopsim demo

## test: set up, then lint and run the whole test suite
test: bootstrap
	scripts/test.sh

clean:
	rm -rf .venv data target logs dbt_packages .dbt_core

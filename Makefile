# The two entry points the README starts with.
# `make test PYTEST_ARGS="tests/integration -x"` runs a subset.
.PHONY: demo test bootstrap

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh $(PYTEST_ARGS)

bootstrap:
	bash scripts/bootstrap.sh

# The two commands: `make up` runs the gateway on embedded defaults, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NATIVE := $(wildcard native/src/*.c native/src/*.h native/include/*.h native/cdef/*.cdef) native/build.py
CC ?= cc

.PHONY: up test bench bench-full install native ctest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

# Editable install: the cffi build drops gateway/_native*.so into the tree.
$(STAMP): $(BIN)/python pyproject.toml setup.py $(NATIVE)
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(BIN)/converse up

test: install ctest
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks.run --short

bench-full: install
	$(BIN)/python -m benchmarks.run

# C tests, built with AddressSanitizer + UndefinedBehaviorSanitizer.
CTEST_FLAGS := -std=c11 -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all -Wall -Wextra -Wno-unused-parameter -Inative/include -DCVG_COUNT_ALLOCS=1
ctest:
	@mkdir -p native/build/ctest
	@set -e; for t in native/tests/test_*.c; do \
		[ -e "$$t" ] || continue; \
		exe=native/build/ctest/$$(basename $$t .c); \
		$(CC) $(CTEST_FLAGS) -o $$exe $$t $(wildcard native/src/*.c) -lm; \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$exe; \
	done

clean:
	rm -rf native/build build gateway/_native*.so gateway/_native.c *.egg-info

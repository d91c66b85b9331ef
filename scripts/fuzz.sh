#!/bin/sh
# Runs every fuzz target in the module for $1 (default 30s) each.
set -eu
t=${1:-30s}
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		echo "== $dir $f"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$dir"
	done
done

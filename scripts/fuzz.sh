#!/bin/sh
# Runs every fuzz target in the module for $1 (default 30s) each, with
# FUZZPARALLEL workers (default: Go's, one per core; with 1, targets with
# large seeds may spend the whole time on their seed corpus), and prints a summary:
# per target the executions, the inputs that found new coverage in this
# run, and the corpus size; failures are listed at the end (exit 1).
#   make fuzz FUZZTIME=10m
set -u
t=${1:-30s}
par=${FUZZPARALLEL:+-parallel $FUZZPARALLEL}
sum=$(mktemp)
trap 'rm -f "$sum"' EXIT
failed=""
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
	for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
		echo "== $dir $f"
		out=$(go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" $par "$dir" 2>&1)
		rc=$?
		echo "$out" | tail -n 4
		last=$(echo "$out" | grep '^fuzz: elapsed' | tail -n 1)
		execs=$(echo "$last" | sed -n 's/.*execs: \([0-9]*\).*/\1/p')
		new=$(echo "$last" | sed -n 's/.*new interesting: \([0-9]*\).*/\1/p')
		total=$(echo "$last" | sed -n 's/.*(total: \([0-9]*\)).*/\1/p')
		res=ok
		if [ $rc -ne 0 ]; then
			res=FAIL
			failed="$failed $dir:$f"
		fi
		printf '%-28s %-26s %12s %6s %6s %s\n' "$dir" "$f" "${execs:-?}" "${new:-?}" "${total:-?}" "$res" >>"$sum"
	done
done
echo
echo "fuzzing time per target: $t"
printf '%-28s %-26s %12s %6s %6s %s\n' package target execs new corpus result
cat "$sum"
if [ -n "$failed" ]; then
	echo "failed:$failed"
	exit 1
fi

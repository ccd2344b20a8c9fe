#!/bin/bash
# The counter as a shell user writes it: cat reads in a child process, the
# shell writes. Usage: counter_shell.sh ITERATIONS (in the directory of
# counter.txt).
iterations=${1:-100}
for ((i = 0; i < iterations; i++)); do
	n=$(cat counter.txt)
	echo $((n + 1)) > counter.txt
done

#!/bin/bash
# Inserts rows into a shared SQLite database, one sqlite3 invocation per row,
# as a shell script driving the sqlite3 command-line shell does. SQLite's own
# fcntl locks coordinate the writers; .timeout makes a busy writer retry.
# Usage: sqlite_insert.sh DB NAME ROWS
set -e
db=$1 name=$2 rows=$3
for ((i = 0; i < rows; i++)); do
	sqlite3 -bail -cmd ".timeout 5000" "$db" \
		"INSERT INTO t(who, n) VALUES ('$name', $i);"
done

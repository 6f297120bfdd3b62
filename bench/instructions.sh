#!/usr/bin/env bash
# Instructions the app executes per request (valgrind's callgrind), for A/B comparisons that
# this machine's drifting speed cannot blur: two runs of bench/cost.py that differ only in the
# number of requests, and the difference divided by that number. Repeats to within about 1%.
#
#   bench/instructions.sh get            # a todo read (scenarios: see bench/cost.py)
#   PYTHON=/path/to/python bench/instructions.sh health
#
# About two minutes per scenario (valgrind runs Python 50x slower). Needs valgrind (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
short=100 long=400
count() {
  PROFILE_CALLS=0 PROFILE_N=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$python" bench/cost.py "$2" 2>&1 | sed -n 's/.*Collected : //p'
}
for scenario in "${@:-get}"; do
  a=$(count $short "$scenario")
  b=$(count $long "$scenario")
  echo "$scenario $(((b - a) / (long - short))) instructions/request"
done

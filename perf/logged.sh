#!/bin/sh
# perf/logged.sh LOG COMMAND...: runs a benchmark command and appends to LOG
# what docs/PERF.md asks next to every figure: the time, the load average
# before and after, the build (git rev of this tree) and the command.
set -u
log=$1
shift
rev=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "=== $(date -u '+%Y-%m-%d %H:%M:%S UTC') build $rev load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "\$ $*"
} >>"$log"
"$@" >>"$log" 2>&1
rc=$?
echo "=== end $(date -u '+%H:%M:%S UTC') rc $rc load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"
exit $rc

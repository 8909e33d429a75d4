#!/usr/bin/env bash
# Stop what scripts/slurm/start.sh started, and only that: each daemon recorded in
# /run/harness-slurm/started is signalled by pid, after checking that the pid still belongs to
# the same process (its name and start time), in reverse start order. Queued and running jobs are
# cancelled first (their processes would outlive slurmd); KEEP_JOBS=1 leaves them. Packages,
# configuration and state stay, so the next start takes seconds.
set -uo pipefail
STARTED=/run/harness-slurm/started
log() { printf '[slurm-down %(%H:%M:%S)T] %s\n' -1 "$*"; }
[ -s $STARTED ] || { log "nothing started by scripts/slurm/start.sh is recorded; nothing to stop"; exit 0; }

if [ "${KEEP_JOBS:-0}" != 1 ] && grep -q '^slurmctld ' $STARTED && timeout 10 scontrol ping >/dev/null 2>&1; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | xargs)
    if [ -n "$jobs" ]; then
        log "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        scancel $jobs
        for _ in $(seq 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
fi

rc=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    read -r _ pid start pidfile < <(grep "^$name " $STARTED) || continue
    if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != "$name" ] \
        || [ "$(awk '{print $22}' /proc/"$pid"/stat 2>/dev/null)" != "$start" ]; then
        log "$name (pid $pid) is not running"
    else
        kill -TERM "$pid"
        for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) still running after 30 s: SIGKILL"; kill -KILL "$pid" || rc=1
        else
            log "$name (pid $pid) stopped"
        fi
    fi
    # a pid file left behind makes Debian's package scripts call scancel on a dead controller
    if [ "$(cat "$pidfile" 2>/dev/null)" = "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidfile"; fi
    sed -i "/^$name /d" $STARTED
done
exit $rc

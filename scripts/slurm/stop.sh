#!/usr/bin/env bash
# Stop the cluster started by `scripts/slurm/start.sh DIR`: cancel its jobs, then stop the
# daemons recorded in DIR/run/*.pid (and only those; nothing is killed by name).
#
#   scripts/slurm/stop.sh DIR
#   PURGE=1 scripts/slurm/stop.sh DIR    also delete the state: queue, accounting DB (and its
#                                        password, in etc/), munge key, logs
set -uo pipefail

DIR=${1:-${XPM_TRAIN_SLURM_DIR:-}}
[ -n "$DIR" ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ -d "$DIR" ] || { echo "[slurm stop] $DIR does not exist: nothing to stop"; exit 0; }
DIR=$(cd "$DIR" && pwd)
RUN=$DIR/run
export SLURM_CONF=$DIR/etc/slurm.conf

T0=$(date +%s.%N)
log() { printf '[slurm stop %5.1fs] %s\n' "$(awk "BEGIN{print $(date +%s.%N) - $T0}")" "$*"; }

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
stop_daemon() { # stop_daemon NAME [TIMEOUT_S [PROGRAM]]: the daemon of DIR/run/NAME.pid
    local name=$1 timeout=${2:-20} program=${3:-$1} pid i
    if pid=$(live_pid "$RUN/$name.pid" "$program"); then
        kill -TERM "$pid"
        for ((i = 0; i < timeout * 10; i++)); do running "$pid" || break; sleep 0.1; done
        if running "$pid"; then
            log "$name ($pid) still alive after ${timeout}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        log "$name ($pid) stopped"
    else
        log "$name was not running"
    fi
    rm -f "$RUN/$name.pid"
}
# One slurmd per node: DIR/run/slurmd-NODE.pid (DIR/run/slurmd.pid: that of an older start.sh).
slurmds=()
for file in "$RUN"/slurmd-*.pid "$RUN"/slurmd.pid; do
    [ -e "$file" ] && slurmds+=("$(basename "$file" .pid)")
done
any_slurmd_alive() {
    local name
    for name in "${slurmds[@]}"; do live_pid "$RUN/$name.pid" slurmd >/dev/null && return 0; done
    return 1
}

# Cancel the jobs while slurmctld and slurmd are up, so that no job process is left behind.
if live_pid "$RUN/slurmctld.pid" slurmctld >/dev/null && any_slurmd_alive; then
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for ((i = 0; i < 300; i++)); do
            [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
fi

# In the reverse order of start.sh.
[ ${#slurmds[@]} -gt 0 ] || log "slurmd was not running"
for name in "${slurmds[@]}"; do stop_daemon "$name" 20 slurmd; done
stop_daemon slurmctld
stop_daemon slurmdbd
stop_daemon mariadbd 60
stop_daemon munged

for proc in /proc/[0-9]*; do
    if [ "$(cat "$proc/comm" 2>/dev/null)" = slurmstepd ] && running "${proc#/proc/}"; then
        log "WARNING: job step process ${proc#/proc/} is still running (not killed)"
    fi
done
if [ "${PURGE:-0}" = 1 ]; then
    rm -rf "${DIR:?}/state" "${DIR:?}/mysql" "${DIR:?}/munge" "${DIR:?}/log" "${DIR:?}/run" \
        "${DIR:?}/etc" "${DIR:?}/env.sh"
    log "state, accounting database, munge key and logs deleted"
fi
log "done"

#!/usr/bin/env bash
# Start a real single-node SLURM cluster whose files all live in DIR:
#   munged + a private MariaDB (127.0.0.1) + slurmdbd + slurmctld + slurmd,
#   partitions `cpu` (default) and `gpu`, both on this machine.
#
#   scripts/slurm/start.sh DIR      (as root; installs the Debian packages when missing)
#   source DIR/env.sh               (exports SLURM_CONF for sbatch, sacct, ... and experimaestro)
#   scripts/slurm/stop.sh DIR       (cancels the jobs, stops exactly these daemons)
#
# Safe to run again: running daemons are kept (0.5 s); a changed slurm.conf restarts slurmctld
# and slurmd. Accounting (slurmdbd) is not optional: experimaestro polls job states with sacct.
# Knobs (environment): NODE (default: hostname -s), CTLD_PORT=6817, SLURMD_PORT=6818,
# DBD_PORT=6819, MYSQL_PORT=3307, WAIT_TIMEOUT=60 (seconds for the node to become idle).
# See docs/slurm.md.
set -euo pipefail

DIR=${1:-${XPM_TRAIN_SLURM_DIR:-}}
[ -n "$DIR" ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
NODE=${NODE:-$(hostname -s)}
CTLD_PORT=${CTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${DBD_PORT:-6819}
MYSQL_PORT=${MYSQL_PORT:-3307}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
CLUSTER=xpmtrain
DB_USER=slurm
DB_PASS=slurm-local

ETC=$DIR/etc RUN=$DIR/run LOGS=$DIR/log MUNGE=$DIR/munge STATE=$DIR/state DB=$DIR/mysql
MUNGE_SOCKET=$MUNGE/munge.socket.2
export SLURM_CONF=$ETC/slurm.conf

T0=$(date +%s.%N)
log() { printf '[slurm start %5.1fs] %s\n' "$(awk "BEGIN{print $(date +%s.%N) - $T0}")" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (the daemons run as root from $DIR)"
command -v apt-get >/dev/null || die "needs a Debian-like system with apt-get"

# ------------------------------------------------------------------ packages
# --no-install-recommends: slurm-wlm's recommends pull in ~40 packages (hdf5, rocm, ...).
# mariadb-client-core provides my_print_defaults, which mariadb-install-db needs.
PACKAGES=(munge slurm-client slurmctld slurmd slurmdbd mariadb-server-core mariadb-client-core)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    # Keep the packages' postinst scripts from starting system-wide daemons.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    status=0
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1; then
        apt-get update -q >>"$DIR/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/apt.log" 2>&1 \
            || status=$?
    fi
    [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $status = 0 ] || { echo "apt-get failed, see $DIR/apt.log" >&2; exit 1; }
    log "packages installed"
fi

# ------------------------------------------------------------------ helpers
mkdir -p "$ETC" "$RUN" "$LOGS" "$MUNGE" "$STATE/ctld" "$STATE/d"
chmod 755 "$DIR" "$ETC" "$RUN" "$LOGS" "$MUNGE" # munged wants its socket folder o+x

# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"
alive() { live_pid "$1" "$2" >/dev/null; } # is the daemon of PID file $1 (program $2) up?
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds
    local end=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}
stop_pidfile() { # stop_pidfile FILE PROGRAM: TERM it and wait
    local pid i
    alive "$1" "$2" || return 0
    pid=$(cat "$1")
    kill -TERM "$pid"
    for ((i = 0; i < 300; i++)); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid"
    rm -f "$1"
}

# ------------------------------------------------------------------ munge
if alive "$RUN/munged.pid" munged; then
    log "munged already running"
else
    [ -s "$MUNGE/munge.key" ] || mungekey -c -k "$MUNGE/munge.key"
    chmod 600 "$MUNGE/munge.key"
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged --key-file="$MUNGE/munge.key" --socket="$MUNGE_SOCKET" --pid-file="$RUN/munged.pid" \
        --log-file="$LOGS/munged.log" --seed-file="$MUNGE/munged.seed" --num-threads=4
    wait_for 10 sh -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'" \
        || die "munged does not answer, see $LOGS/munged.log"
    log "munged started"
fi

# ------------------------------------------------------------------ slurm.conf
# e.g. NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
HARDWARE=$(slurmd -C)
HARDWARE=${HARDWARE%%$'\n'*}
hw() { tr ' ' '\n' <<<"$HARDWARE" | sed -n "s/^$1=//p"; }
MEMORY=$(($(hw RealMemory) * 95 / 100)) # less than measured, else the node is drained
cat >"$ETC/slurm.conf.new" <<EOF
# Generated by scripts/slurm/start.sh: a single-node cluster for xpm-train.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoInAddrAny
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# The munge socket of the connection to slurmdbd (sacct, sacctmgr, slurmctld).
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# Dependent jobs of a failed job are cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
# Schedule jobs as soon as they are submitted (default: up to 3 s later).
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
KillWait=5
MinJobAge=300
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(hw CPUs) Boards=$(hw Boards) SocketsPerBoard=$(hw SocketsPerBoard) CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore) RealMemory=$MEMORY State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
# A second partition on the same node, to try per-stage launchers (it has no GPU).
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
config_changed=0
if cmp -s "$ETC/slurm.conf.new" "$ETC/slurm.conf"; then
    rm "$ETC/slurm.conf.new"
else
    mv "$ETC/slurm.conf.new" "$ETC/slurm.conf"
    config_changed=1
fi
echo "export SLURM_CONF=$SLURM_CONF" >"$DIR/env.sh"

# ------------------------------------------------------------------ accounting
if alive "$RUN/mariadbd.pid" mariadbd; then
    log "mariadbd already running"
else
    if [ ! -d "$DB/data/mysql" ]; then
        mkdir -p "$DB/data"
        mariadb-install-db --no-defaults --datadir="$DB/data" --user=root --skip-test-db \
            --auth-root-authentication-method=socket >"$LOGS/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed, see $LOGS/mariadb-install.log"
    fi
    rm -f "$DB/mysqld.sock"
    setsid mariadbd --no-defaults --datadir="$DB/data" --user=root --socket="$DB/mysqld.sock" \
        --port="$MYSQL_PORT" --bind-address=127.0.0.1 --pid-file="$RUN/mariadbd.pid" \
        --log-error="$LOGS/mariadbd.log" --innodb-buffer-pool-size=256M \
        --innodb-log-file-size=64M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    wait_for 30 mariadb --no-defaults -S "$DB/mysqld.sock" -u root -e 'select 1' \
        || die "mariadbd did not start, see $LOGS/mariadbd.log"
    log "mariadbd started"
fi
mariadb --no-defaults -S "$DB/mysqld.sock" -u root -e "
    CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'127.0.0.1';"
cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$ETC/slurmdbd.conf" # slurmdbd refuses a readable one
if alive "$RUN/slurmdbd.pid" slurmdbd; then
    log "slurmdbd already running"
else
    slurmdbd # reads slurmdbd.conf next to $SLURM_CONF
    wait_for 30 sacctmgr -n list cluster || die "slurmdbd does not answer, see $LOGS/slurmdbd.log"
    log "slurmdbd started"
fi
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    log "cluster $CLUSTER registered"
fi

# ------------------------------------------------------------------ slurmctld, slurmd
if [ $config_changed = 1 ] && { alive "$RUN/slurmctld.pid" slurmctld || alive "$RUN/slurmd.pid" slurmd; }; then
    log "slurm.conf changed: restarting slurmd and slurmctld (running jobs survive)"
    stop_pidfile "$RUN/slurmd.pid" slurmd
    stop_pidfile "$RUN/slurmctld.pid" slurmctld
fi
if alive "$RUN/slurmctld.pid" slurmctld; then
    log "slurmctld already running"
else
    slurmctld
    wait_for 30 scontrol ping || die "slurmctld does not answer, see $LOGS/slurmctld.log"
    log "slurmctld started"
fi
slurmd_started_at=""
if alive "$RUN/slurmd.pid" slurmd; then
    log "slurmd already running"
else
    slurmd_started_at=$(($(date +%s) - 1))
    slurmd -N "$NODE"
    wait_for 10 test -s "$RUN/slurmd.pid" || die "slurmd did not start, see $LOGS/slurmd.log"
    log "slurmd started"
fi

# ------------------------------------------------------------------ wait until idle
registered() { # has the slurmd started above registered with slurmctld?
    [ -z "$slurmd_started_at" ] && return 0
    local at
    at=$(scontrol show node "$NODE" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
    [ -n "$at" ] && [ "$at" != None ] && [ "$(date -d "$at" +%s)" -ge "$slurmd_started_at" ]
}
end=$(($(date +%s) + WAIT_TIMEOUT))
resumed=0
while :; do
    state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1) || state=unknown
    registered || state="unregistered ($state)"
    case "$state" in
    idle | mixed | allocated) break ;;
    down* | drain*)
        if [ $resumed = 0 ]; then
            scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
            resumed=1
        fi
        ;;
    esac
    [ "$(date +%s)" -lt "$end" ] || die "node $NODE is not idle after ${WAIT_TIMEOUT}s ($state)"
    sleep 0.2
done
log "cluster ready: node $NODE is $state; partitions: $(sinfo -h -o '%P' | tr '\n' ' ')"
echo "export SLURM_CONF=$SLURM_CONF   # (also in $DIR/env.sh)"

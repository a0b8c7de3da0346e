#!/usr/bin/env bash
# Start a real SLURM cluster on this machine whose files all live in DIR:
#   munged + a private MariaDB (127.0.0.1) + slurmdbd + slurmctld + two slurmd,
#   node $NODE in partitions `cpu` (default) and `gpu`, and a second node ($SECOND_NODE, its own
#   slurmd on its own port, 1 CPU) that only partition `multi` adds: `multi` has both nodes, for
#   jobs of several nodes (e.g. `srun -p multi -N2 -n2 hostname`).
#
#   scripts/slurm/start.sh DIR      (as root; installs the Debian packages when missing)
#   source DIR/env.sh               (exports SLURM_CONF for sbatch, sacct, ... and experimaestro)
#   scripts/slurm/stop.sh DIR       (cancels the jobs, stops exactly these daemons)
#
# Safe to run again: running daemons are kept (0.5 s); a changed slurm.conf restarts slurmctld
# and the slurmd. Accounting (slurmdbd) is not optional: experimaestro polls job states with sacct.
# Knobs (environment): NODE (default: hostname -s), SECOND_NODE=localhost (a name that resolves
# to this machine, as jax.distributed's coordinator is the first node of a job; empty: no second
# node and no `multi` partition), CTLD_PORT=6817, SLURMD_PORT=6818 (NODE's slurmd), DBD_PORT=6819,
# SECOND_SLURMD_PORT=6820, MYSQL_PORT=3307, WAIT_TIMEOUT=60 (seconds for the nodes to be idle),
# BIND_ADDR=127.0.0.1 (the address slurmctld and slurmdbd listen on).
#
# Exposure: nothing listens on all interfaces. Slurm 22.05 binds each daemon to the address of
# its host name (NoInAddrAny, NoCtldInAddrAny): slurmctld and slurmdbd run in their own UTS
# namespace (unshare --uts) whose host name is BIND_ADDR; the slurmd (and srun) bind the address
# of this machine's host name, which must be a loopback one (or BIND_ADDR); MariaDB 127.0.0.1.
# The daemons run as root, so DIR must be root's (owned by root, not writable by group or
# others, nor any folder above it unless sticky like /tmp): the script refuses any other.
# The database password is random, per DIR (DIR/etc/slurmdb.password, mode 600).
# See docs/slurm.md and docs/security.md.
set -euo pipefail

T0=$(date +%s.%N)
log() { printf '[slurm start %5.1fs] %s\n' "$(awk "BEGIN{print $(date +%s.%N) - $T0}")" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# A temporary /usr/sbin/policy-rc.d (see the packages below) is removed however the script ends.
POLICY_RC_D=/usr/sbin/policy-rc.d
own_policy=0
remove_policy() {
    if [ $own_policy = 1 ]; then rm -f "$POLICY_RC_D"; own_policy=0; fi
}
trap remove_policy EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

DIR=${1:-${XPM_TRAIN_SLURM_DIR:-}}
[ -n "$DIR" ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run as root (the daemons run as root from $DIR)"

# ------------------------------------------------------------------ DIR: root's only
# Whoever can write DIR (or replace it) could make root run anything (its slurm.conf names the
# programs slurmctld runs), so refuse it before anything is installed, written or started.
# root_only FOLDER WHAT [above]: FOLDER (DIR, or with `above` one of the folders above it) is
# owned by root, writable by nobody else (above DIR: unless sticky, as /tmp), and o+x (munged).
root_only() {
    local owner mode
    read -r owner mode < <(stat -c '%u %a' "$1")
    [ "$owner" = 0 ] \
        || die "refusing $2: owned by uid $owner, not root (who owns it could run commands as root)"
    if ((8#$mode & 8#022)) && { [ -z "${3:-}" ] || ! ((8#$mode & 8#1000)); }; then
        die "refusing $2: writable by group or others (mode $mode; chmod go-w $1)"
    fi
    ((8#$mode & 8#001)) \
        || die "refusing $2: not searchable by others (mode $mode; munged needs chmod o+x $1)"
}
folders_above() { # folders_above FOLDER: FOLDER and each folder above it, up to /
    local folder
    folder=$(cd "$1" && pwd -P)
    while [ "$folder" != / ]; do
        root_only "$folder" "$DIR: the folder above it $folder" above
        folder=$(dirname "$folder")
    done
    root_only / "$DIR: the folder above it /" above
}
if [ -L "$DIR" ] && [ "$(stat -c %u "$DIR")" != 0 ]; then
    die "refusing $DIR: a symbolic link owned by uid $(stat -c %u "$DIR"), not root"
fi
if [ ! -e "$DIR" ]; then # check the folders above before creating anything
    existing=$(dirname "$DIR")
    while [ ! -e "$existing" ]; do existing=$(dirname "$existing"); done
    folders_above "$existing"
    (umask 022 && mkdir -p "$DIR") || die "cannot create $DIR"
fi
[ -d "$DIR" ] || die "refusing $DIR: not a folder"
DIR=$(cd "$DIR" && pwd -P)
root_only "$DIR" "$DIR"
folders_above "$(dirname "$DIR")"
for sub in etc run log munge state mysql; do # what an earlier run made must be root's too
    if [ -e "$DIR/$sub" ]; then
        read -r owner mode < <(stat -c '%u %a' "$DIR/$sub")
        [ "$owner" = 0 ] && ! ((8#$mode & 8#022)) \
            || die "refusing $DIR: $DIR/$sub is not root's only (uid $owner, mode $mode)"
    fi
done

NODE=${NODE:-$(hostname -s)}
SECOND_NODE=${SECOND_NODE-localhost}
CTLD_PORT=${CTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
SECOND_SLURMD_PORT=${SECOND_SLURMD_PORT:-6820}
DBD_PORT=${DBD_PORT:-6819}
MYSQL_PORT=${MYSQL_PORT:-3307}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
BIND_ADDR_GIVEN=${BIND_ADDR:-}
BIND_ADDR=${BIND_ADDR:-127.0.0.1}
CLUSTER=xpmtrain
DB_USER=slurm

ETC=$DIR/etc RUN=$DIR/run LOGS=$DIR/log MUNGE=$DIR/munge STATE=$DIR/state DB=$DIR/mysql
MUNGE_SOCKET=$MUNGE/munge.socket.2
DB_PASS_FILE=$ETC/slurmdb.password
export SLURM_CONF=$ETC/slurm.conf

[ "$SECOND_NODE" != "$NODE" ] || die "SECOND_NODE must differ from NODE ($NODE)"
if [ -n "$SECOND_NODE" ]; then
    getent hosts "$SECOND_NODE" >/dev/null \
        || die "SECOND_NODE=$SECOND_NODE does not resolve (jobs use node names as addresses)"
    NODES=("$NODE" "$SECOND_NODE")
else
    NODES=("$NODE")
fi
command -v apt-get >/dev/null || die "needs a Debian-like system with apt-get"

# ------------------------------------------------------------------ listening addresses
# With NoInAddrAny (slurmd, slurmdbd, srun) and NoCtldInAddrAny (slurmctld), Slurm 22.05 binds
# the address its host name resolves to, not all interfaces (and has no option to bind another).
# slurmctld and slurmdbd each run in their own UTS namespace whose host name is BIND_ADDR itself
# (so BIND_ADDR is also SlurmctldHost and DbdHost). The slurmd run in the machine's namespace, as
# their jobs do, so they bind the address of this machine's host name: their NodeAddr.
[[ $BIND_ADDR =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] && [ "$BIND_ADDR" != 0.0.0.0 ] \
    || die "BIND_ADDR=$BIND_ADDR: give one IPv4 address of this machine (default 127.0.0.1)"
HOST_ADDR=$(getent ahostsv4 "$(hostname)" | awk 'NR == 1 {print $1}')
[ -n "$HOST_ADDR" ] || die "the host name $(hostname) does not resolve to an IPv4 address"
if [[ $HOST_ADDR != 127.* ]] && [ "$HOST_ADDR" != "$BIND_ADDR" ]; then
    die "the slurmd would listen on $HOST_ADDR, the address of the host name $(hostname)" \
        "(Slurm 22.05 binds that one): map $(hostname) to 127.0.1.1 in /etc/hosts, or give" \
        "BIND_ADDR=$HOST_ADDR to open the whole cluster to that network"
fi
if unshare --uts true 2>/dev/null; then
    CTLD_HOST=$BIND_ADDR
    bound() { unshare --uts sh -c 'hostname "$0" && exec "$@"' "$BIND_ADDR" "$@"; }
else # e.g. a container without CAP_SYS_ADMIN: the daemons bind HOST_ADDR, as the slurmd
    if [ "$HOST_ADDR" != "$BIND_ADDR" ]; then
        [ -z "$BIND_ADDR_GIVEN" ] || die "cannot bind slurmctld and slurmdbd to $BIND_ADDR:" \
            "unshare --uts (to give them that host name) is not permitted here, and the host" \
            "name $(hostname) resolves to $HOST_ADDR"
        log "unshare --uts is not permitted here: slurmctld and slurmdbd listen on $HOST_ADDR" \
            "(the address of $(hostname), a loopback one)"
        BIND_ADDR=$HOST_ADDR
    fi
    CTLD_HOST=$NODE
    bound() { "$@"; }
fi

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
    # Keep the packages' postinst scripts from starting system-wide daemons (removed on exit,
    # also when interrupted: see remove_policy).
    if (set -C && printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D") 2>/dev/null; then
        own_policy=1
        chmod 755 "$POLICY_RC_D"
    fi
    export DEBIAN_FRONTEND=noninteractive
    status=0
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$DIR/apt.log" 2>&1; then
        apt-get update -q >>"$DIR/apt.log" 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$DIR/apt.log" 2>&1 \
            || status=$?
    fi
    remove_policy
    [ $status = 0 ] || { echo "apt-get failed, see $DIR/apt.log" >&2; exit 1; }
    log "packages installed"
fi

# ------------------------------------------------------------------ helpers
mkdir -p "$ETC" "$RUN" "$LOGS" "$MUNGE" "$STATE/ctld"
for node in "${NODES[@]}"; do mkdir -p "$STATE/d/$node"; done # SlurmdSpoolDir, per node
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
# Both nodes are this machine, each with its own slurmd (`slurmd -N NAME`, a build with multiple
# slurmd support): distinct ports, and %n (the node name) in the slurmd's files.
SECOND=""
if [ -n "$SECOND_NODE" ]; then
    SECOND="# The second node: this machine again (1 CPU and half the memory: fewer than slurmd -C
# finds is accepted), only in partition multi, so that cpu and gpu keep a single node.
NodeName=$SECOND_NODE NodeAddr=$HOST_ADDR Port=$SECOND_SLURMD_PORT CPUs=1 RealMemory=$((MEMORY / 2)) State=UNKNOWN
PartitionName=multi Nodes=$NODE,$SECOND_NODE MaxTime=INFINITE State=UP"
fi
cat >"$ETC/slurm.conf.new" <<EOF
# Generated by scripts/slurm/start.sh: a local cluster for xpm-train.
ClusterName=$CLUSTER
SlurmctldHost=$CTLD_HOST($BIND_ADDR)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
# Bind one address, not all interfaces: that of the host name (see BIND_ADDR above).
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$BIND_ADDR
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
NodeName=$NODE NodeAddr=$HOST_ADDR Port=$SLURMD_PORT CPUs=$(hw CPUs) Boards=$(hw Boards) SocketsPerBoard=$(hw SocketsPerBoard) CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore) RealMemory=$MEMORY State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
# A second partition on the same node, to try per-stage launchers (it has no GPU).
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
$SECOND
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
# The database user's password: random, made once per DIR. A DIR of an older start.sh, whose
# user had a fixed password, gets a new one here (set below, and slurmdbd restarted).
if [ ! -s "$DB_PASS_FILE" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' 'xy' >"$DB_PASS_FILE.new")
    mv "$DB_PASS_FILE.new" "$DB_PASS_FILE"
    log "new database password in $DB_PASS_FILE"
fi
chmod 600 "$DB_PASS_FILE"
DB_PASS=$(cat "$DB_PASS_FILE")
[[ $DB_PASS =~ ^[A-Za-z0-9]{16,}$ ]] || die "$DB_PASS_FILE: not one of this script (delete it)"
# On stdin, not on the command line (which other users see in ps).
mariadb --no-defaults -S "$DB/mysqld.sock" -u root <<EOF
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO '$DB_USER'@'127.0.0.1';
EOF
# slurmdbd refuses a slurmdbd.conf others can read: mode 600 from the start.
(umask 077 && cat >"$ETC/slurmdbd.conf.new") <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$CTLD_HOST
DbdAddr=$BIND_ADDR
DbdPort=$DBD_PORT
# Bind DbdAddr (the address of its host name), not all interfaces.
CommunicationParameters=NoInAddrAny
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
if cmp -s "$ETC/slurmdbd.conf.new" "$ETC/slurmdbd.conf"; then
    rm "$ETC/slurmdbd.conf.new"
else
    mv "$ETC/slurmdbd.conf.new" "$ETC/slurmdbd.conf"
    if alive "$RUN/slurmdbd.pid" slurmdbd; then
        log "slurmdbd.conf changed: restarting slurmdbd"
        stop_pidfile "$RUN/slurmdbd.pid" slurmdbd
    fi
fi
chmod 600 "$ETC/slurmdbd.conf"
if alive "$RUN/slurmdbd.pid" slurmdbd; then
    log "slurmdbd already running"
else
    bound slurmdbd # reads slurmdbd.conf next to $SLURM_CONF
    wait_for 30 sacctmgr -n list cluster || die "slurmdbd does not answer, see $LOGS/slurmdbd.log"
    log "slurmdbd started"
fi
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
    log "cluster $CLUSTER registered"
fi

# ------------------------------------------------------------------ slurmctld, slurmd
# One slurmd per node, each with its PID file $RUN/slurmd-NODE.pid ($RUN/slurmd.pid: the single
# slurmd of an older start.sh, whose slurm.conf differs, so it is restarted as the others).
slurmd_pidfiles=("$RUN"/slurmd.pid "$RUN"/slurmd-*.pid)
any_slurmd_alive() {
    local file
    for file in "${slurmd_pidfiles[@]}"; do alive "$file" slurmd && return 0; done
    return 1
}
if [ $config_changed = 1 ] && { alive "$RUN/slurmctld.pid" slurmctld || any_slurmd_alive; }; then
    log "slurm.conf changed: restarting the slurmd and slurmctld (running jobs survive)"
    for file in "${slurmd_pidfiles[@]}"; do stop_pidfile "$file" slurmd; done
    stop_pidfile "$RUN/slurmctld.pid" slurmctld
fi
if alive "$RUN/slurmctld.pid" slurmctld; then
    log "slurmctld already running"
else
    bound slurmctld
    wait_for 30 scontrol ping || die "slurmctld does not answer, see $LOGS/slurmctld.log"
    log "slurmctld started"
fi
declare -A slurmd_started_at=() # node -> when its slurmd was started here
for node in "${NODES[@]}"; do
    if alive "$RUN/slurmd-$node.pid" slurmd; then
        log "slurmd of node $node already running"
    else
        slurmd_started_at[$node]=$(($(date +%s) - 1))
        slurmd -N "$node"
        wait_for 10 test -s "$RUN/slurmd-$node.pid" \
            || die "slurmd of node $node did not start, see $LOGS/slurmd-$node.log"
        log "slurmd of node $node started"
    fi
done

# ------------------------------------------------------------------ wait until idle
registered() { # registered NODE: has the slurmd started above for NODE registered with slurmctld?
    [ -z "${slurmd_started_at[$1]:-}" ] && return 0
    local at
    at=$(scontrol show node "$1" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
    [ -n "$at" ] && [ "$at" != None ] && [ "$(date -d "$at" +%s)" -ge "${slurmd_started_at[$1]}" ]
}
end=$(($(date +%s) + WAIT_TIMEOUT))
ready="" # node vm is idle, node localhost is idle
for node in "${NODES[@]}"; do
    resumed=0
    while :; do
        state=$(sinfo -h -n "$node" -o '%T' 2>/dev/null | head -1) || state=unknown
        registered "$node" || state="unregistered ($state)"
        case "$state" in
        idle | mixed | allocated) break ;;
        down* | drain*)
            if [ $resumed = 0 ]; then
                scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
                resumed=1
            fi
            ;;
        esac
        [ "$(date +%s)" -lt "$end" ] || die "node $node is not idle after ${WAIT_TIMEOUT}s ($state)"
        sleep 0.2
    done
    ready="$ready${ready:+, }node $node is $state"
done
log "cluster ready: $ready; partitions: $(sinfo -h -o '%P' | tr '\n' ' ')"
echo "export SLURM_CONF=$SLURM_CONF   # (also in $DIR/env.sh)"

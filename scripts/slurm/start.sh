#!/usr/bin/env bash
# A real single-node SLURM cluster on this (Debian) machine, for the `slurm` tests and for
# trying `make sweep LAUNCHER=slurm` without a cluster (`make slurm-up`). Needs root; no systemd:
# the daemons (munged, optionally mariadbd + slurmdbd, slurmctld, slurmd) are started directly.
# Idempotent: daemons that run are kept (restarted only when the config written here changed);
# missing packages are installed with apt-get. Waits until the node is idle. Every daemon this
# script starts is recorded (name, pid, process start time) so `stop.sh` stops those and only those.
#
# Environment (all optional):
#   SLURM_ACCOUNTING=0    1: mariadb + slurmdbd, so `sacct` answers (more packages, ~10 s more)
#   SLURM_PARTITION=debug the partition (the cluster's default)
#   SLURM_CPUS, SLURM_REALMEM_MB   node size (default: nproc, 85% of MemTotal)
#   SLURM_WAIT_S=90       how long to wait for the node to become idle
#   SLURM_SMOKE=1         then check `sbatch --wrap` end to end
# Idea and daemon order after SchedMD's quick-start guide (https://slurm.schedmd.com/quickstart_admin.html).
set -euo pipefail

ACCOUNTING=${SLURM_ACCOUNTING:-0}
PARTITION=${SLURM_PARTITION:-debug}
WAIT_S=${SLURM_WAIT_S:-90}
SMOKE=${SLURM_SMOKE:-1}
NODE=$(hostname -s)
STATE=/run/harness-slurm            # what this script started, for stop.sh
STARTED=$STATE/started
DB_PASS=harness-local               # MariaDB user of slurmdbd, bound to 127.0.0.1 only
T0=$SECONDS

log() { printf '[slurm-up %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts daemons)"

# --- packages ------------------------------------------------------------------------------
want=(slurm-wlm munge)
[ "$ACCOUNTING" = 1 ] && want+=(slurmdbd mariadb-server)
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    policy=/usr/sbin/policy-rc.d ours=0
    if [ ! -e $policy ]; then  # keep the packages' install scripts from starting services themselves
        printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; ours=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    ok=1
    apt-get install -y -q "${missing[@]}" >/tmp/harness-slurm-apt.log 2>&1 \
        || { apt-get update -q >>/tmp/harness-slurm-apt.log 2>&1 \
             && apt-get install -y -q "${missing[@]}" >>/tmp/harness-slurm-apt.log 2>&1; } || ok=0
    [ $ours = 1 ] && rm -f $policy
    [ $ok = 1 ] || { tail -5 /tmp/harness-slurm-apt.log; die "apt-get install failed (/tmp/harness-slurm-apt.log)"; }
    log "installed in $((SECONDS - T0)) s"
fi

# --- helpers -------------------------------------------------------------------------------
mkdir -p $STATE; touch $STARTED
running() {  # running PIDFILE NAME: the pid file names a live process called NAME
    local pid; pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]
}
remember() {  # remember NAME PIDFILE: record a daemon started here (pid + start time guard pid reuse)
    local pid; pid=$(cat "$2")
    { grep -v "^$1 " $STARTED || true; echo "$1 $pid $(awk '{print $22}' /proc/"$pid"/stat) $2"; } > $STARTED.new
    mv $STARTED.new $STARTED
    log "$1 started (pid $pid)"
}
until_ok() {  # until_ok SECONDS WHAT COMMAND...: poll COMMAND every 0.25 s
    local tries=$(( $1 * 4 )) what=$2; shift 2
    for _ in $(seq $tries); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    die "timed out after ${tries} tries waiting for $what"
}
restart_if_ours() {  # a daemon reading an outdated config: stop it if this script started it
    local name=$1 pid
    read -r _ pid _ _ < <(grep "^$name " $STARTED) || return 0
    [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ] || return 0
    kill "$pid"; for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

# --- munge (authentication between the daemons and the commands) -----------------------------
AUTH=auth/munge CRED=cred/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
if ! running /run/munge/munged.pid munged; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    until_ok 10 "munged" test -s /run/munge/munged.pid
    remember munged /run/munge/munged.pid
fi
if ! munge -n | unmunge >/dev/null 2>&1; then
    log "munge does not work here (/var/log/munge/munged.log): using auth/none"
    AUTH=auth/none CRED=cred/none
fi

# --- configuration -------------------------------------------------------------------------
CPUS=${SLURM_CPUS:-$(nproc)}
MEM=${SLURM_REALMEM_MB:-$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.85}' /proc/meminfo)}
if [ "$ACCOUNTING" = 1 ]; then
    STORAGE=$'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost'
else
    STORAGE=AccountingStorageType=accounting_storage/none
fi
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
install -d -m 0755 /var/spool/slurmd /etc/slurm
conf="# single-node cluster of the vision-encoder harness (scripts/slurm/start.sh)
ClusterName=harness
SlurmctldHost=$NODE(127.0.0.1)
AuthType=$AUTH
CredType=$CRED
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$(( MEM / CPUS ))
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
$STORAGE
JobCompType=jobcomp/none
ReturnToService=2
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"
changed=0
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
    printf '%s\n' "$conf" > /etc/slurm/slurm.conf; changed=1; log "wrote /etc/slurm/slurm.conf"
fi
if [ "$ACCOUNTING" = 1 ]; then
    dbconf="AuthType=$AUTH
DbdHost=localhost
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS"
    if [ "$(cat /etc/slurm/slurmdbd.conf 2>/dev/null)" != "$dbconf" ]; then
        printf '%s\n' "$dbconf" > /etc/slurm/slurmdbd.conf; changed=1; log "wrote /etc/slurm/slurmdbd.conf"
    fi
    chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 0600 /etc/slurm/slurmdbd.conf
fi
if [ $changed = 1 ]; then
    for d in slurmd slurmctld slurmdbd; do restart_if_ours $d; done
fi

# --- accounting (optional) -----------------------------------------------------------------
if [ "$ACCOUNTING" = 1 ]; then
    install -d -o mysql -g root -m 0755 /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    if ! running /run/mysqld/mysqld.pid mariadbd; then
        rm -f /run/mysqld/mysqld.pid
        setsid -f /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --pid-file=/run/mysqld/mysqld.pid \
            --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 --innodb-buffer-pool-size=64M \
            </dev/null >/var/log/slurm/mariadbd.log 2>&1
        until_ok 60 "mariadbd" mariadb -e 'select 1'
        remember mariadbd /run/mysqld/mysqld.pid
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
                CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    if ! running /run/slurmdbd.pid slurmdbd; then
        rm -f /run/slurmdbd.pid; slurmdbd
        until_ok 10 "slurmdbd" test -s /run/slurmdbd.pid
        remember slurmdbd /run/slurmdbd.pid
    fi
    until_ok 60 "slurmdbd to answer (/var/log/slurm/slurmdbd.log)" sacctmgr -n list cluster
    sacctmgr -n list cluster format=cluster | grep -qw harness || sacctmgr -i add cluster harness >/dev/null
fi

# --- controller and node daemon ------------------------------------------------------------
if ! running /run/slurmctld.pid slurmctld; then
    rm -f /run/slurmctld.pid; slurmctld
    until_ok 15 "slurmctld" test -s /run/slurmctld.pid
    remember slurmctld /run/slurmctld.pid
fi
until_ok 30 "slurmctld to answer (/var/log/slurm/slurmctld.log)" scontrol ping
if ! running /run/slurmd.pid slurmd; then
    rm -f /run/slurmd.pid; slurmd
    until_ok 15 "slurmd" test -s /run/slurmd.pid
    remember slurmd /run/slurmd.pid
fi

# --- the node becomes idle -----------------------------------------------------------------
state="" resumed=0
for _ in $(seq $(( WAIT_S * 4 ))); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1 || true)
    case $state in
        idle|mix|alloc|comp) break ;;
        down*|drain*|drng*|fail*)  # a node state kept from an earlier run: return it to service once
            [ $resumed = 1 ] || { scontrol update nodename="$NODE" state=resume 2>/dev/null || true; resumed=1; } ;;
    esac
    sleep 0.25
done
case $state in idle|mix|alloc|comp) ;; *)
    tail -n 5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log
    die "node $NODE is '$state' after $WAIT_S s" ;;
esac
log "node $NODE $state: $CPUS CPUs, $MEM MB, partition $PARTITION, $AUTH, accounting=$ACCOUNTING"

if [ "$SMOKE" = 1 ]; then
    out=$(mktemp -d)
    job=$(sbatch --parsable -t 1 -o "$out/log" --wrap 'echo ok')
    until_ok 60 "job $job to finish" sh -c "[ \"\$(cat $out/log 2>/dev/null)\" = ok ]"
    rm -rf "$out"
    log "sbatch works (job $job)"
fi
log "ready after $((SECONDS - T0)) s; stop it with scripts/slurm/stop.sh (make slurm-down)"

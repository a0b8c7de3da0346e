# Helpers of start.sh and stop.sh (sourced): the daemons are known by their PID files only.

# Is process $1 alive? (A zombie keeps its /proc entry but is dead.)
running() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }

# Print the PID of PID file $1 if that process is alive and runs program $2 (Debian's binaries
# are /usr/sbin/slurmd-wlm etc.; their comm is slurmd).
live_pid() {
    local pid comm exe
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && running "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null)
    exe=$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")
    [ "$comm" = "$2" ] || [ "$exe" = "$2" ] || [ "$exe" = "$2-wlm" ] || return 1
    echo "$pid"
}

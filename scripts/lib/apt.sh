# Sourced by scripts/test and scripts/postgres.
#
# apt_get ARGS...: apt-get ARGS as root, waiting out the package locks another apt or dpkg holds
# (unattended upgrades, a second terminal) instead of failing: apt-get waits up to
# 10 minutes for the dpkg lock itself (DPkg::Lock::Timeout), and a lock error
# (the package lists' lock, an older apt) is tried again every 30 s, 20 times.
# Any other error is shown and stops.
apt_get() {
    local attempt out
    for attempt in $(seq 1 20); do
        if out=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1); then
            return 0
        fi
        if ! grep -qi 'lock' <<<"$out"; then
            printf '%s\n' "$out" >&2
            return 1
        fi
        echo "apt-get $1: waiting for the lock another apt or dpkg holds (attempt $attempt of 20)" >&2
        sleep "${APT_LOCK_RETRY_SECONDS:-30}"
    done
    printf '%s\n' "$out" >&2
    return 1
}

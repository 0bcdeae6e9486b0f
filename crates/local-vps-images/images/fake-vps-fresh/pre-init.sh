#!/bin/bash
# PID 1 of a fake VPS before systemd: started without --privileged (which fails where the
# engine lacks CAP_SYS_RESOURCE), Docker mounts /sys and the cgroup v1 hierarchies read-only.
# With CAP_SYS_ADMIN we make them writable, as systemd and a nested dockerd need, then hand
# over to systemd.
if [ "$(awk '$2=="/sys"{print substr($4,1,2)}' /proc/mounts)" = ro ]; then
  mount -o remount,rw /sys
fi
if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  for d in /sys/fs/cgroup/*/; do
    d=${d%/}
    if [ "$(awk -v m="$d" '$2==m{print substr($4,1,2)}' /proc/mounts)" = ro ]; then
      mount -o remount,rw,bind "$d" 2>/dev/null || mount -o remount,rw "$d" || true
    fi
  done
fi
if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security; then
  mount -t securityfs none /sys/kernel/security 2>/dev/null || true
fi
mount --make-rshared / 2>/dev/null || true
exec /sbin/init "$@"

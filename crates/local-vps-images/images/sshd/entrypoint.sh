#!/bin/bash
# PID 1 of the test sshd container. sshd runs under a supervisor loop, so a test can
# "restart sshd" (pkill -x sshd) without the container, and its published port, going away.
set -u
mkdir -p /run/sshd /root/.ssh
if [ -n "${SSH_AUTHORIZED_KEYS:-}" ]; then
  printf '%s\n' "$SSH_AUTHORIZED_KEYS" > /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
if [ -n "${SSH_HOST_ED25519_KEY:-}" ]; then
  (umask 077; printf '%s' "$SSH_HOST_ED25519_KEY" | base64 -d > /etc/ssh/ssh_host_ed25519_key)
fi
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
stopping=0
trap 'stopping=1; pkill -x sshd; exit 0' TERM INT
while [ "$stopping" = 0 ]; do
  /usr/sbin/sshd -D -e -h /etc/ssh/ssh_host_ed25519_key ${SSHD_EXTRA_ARGS:-} &
  wait $! || true
  [ "$stopping" = 0 ] && sleep 0.1
done

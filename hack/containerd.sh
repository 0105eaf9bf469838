#!/usr/bin/env bash
# Starts containerd when no socket answers: through systemd where it runs, else in the background
# with its log in /var/log/containerd.log. Waits until it answers.
set -euo pipefail
addr=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}

answers() { ctr --address "$addr" version >/dev/null 2>&1; }

if answers; then exit 0; fi
if [ -d /run/systemd/system ] && systemctl list-unit-files containerd.service >/dev/null 2>&1; then
  systemctl start containerd
else
  echo "starting containerd (log: /var/log/containerd.log)"
  nohup setsid containerd >>/var/log/containerd.log 2>&1 </dev/null &
fi
for _ in $(seq 1 100); do
  answers && exit 0
  sleep 0.1
done
echo "containerd did not answer at $addr within 10s; see /var/log/containerd.log" >&2
exit 1

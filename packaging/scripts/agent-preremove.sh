#!/bin/sh
# traceless-agent: stop and disable the service when the package is
# removed (not on upgrade). The WireGuard device stays until
# `ip link del tl0` (KillMode=process keeps a userspace holder running).
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop traceless-agent.service >/dev/null 2>&1 || true
	fi
	systemctl disable traceless-agent.service >/dev/null 2>&1 || true
	;;
esac

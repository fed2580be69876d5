#!/bin/sh
# traceless-server: stop and disable the service when the package is
# removed (not on upgrade: deb passes "upgrade", rpm passes 1).
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop traceless-server.service >/dev/null 2>&1 || true
	fi
	systemctl disable traceless-server.service >/dev/null 2>&1 || true
	;;
esac

#!/bin/sh
# traceless-server: on purge (deb), the data directory goes: the database
# and the session key. What stays is the traceless system user. dpkg
# removes the configuration file itself. rpm has no purge: an erase keeps
# /var/lib/traceless.
set -e
if [ "$1" = "purge" ]; then
	rm -rf /var/lib/traceless
	rmdir --ignore-fail-on-non-empty /etc/traceless 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

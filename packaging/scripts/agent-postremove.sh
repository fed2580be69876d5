#!/bin/sh
# traceless-agent: on purge (deb), the node credential goes, and
# /etc/traceless/traceless-agent.env if one was written by hand. dpkg
# removes the packaged configuration file itself.
set -e
if [ "$1" = "purge" ]; then
	rm -rf /var/lib/traceless-agent
	rm -f /etc/traceless/traceless-agent.env
	rmdir --ignore-fail-on-non-empty /etc/traceless 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

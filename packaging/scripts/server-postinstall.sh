#!/bin/sh
# traceless-server: owners and modes of the configuration and the data
# directory. The service is neither enabled nor started here: it has to be
# configured first.
set -e
chown root:traceless /etc/traceless/traceless-server.env
chmod 0640 /etc/traceless/traceless-server.env
install -d -o traceless -g traceless -m 0700 /var/lib/traceless
chown traceless:traceless /var/lib/traceless
chmod 0700 /var/lib/traceless
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = "configure" ] && [ -z "$2" ] || [ "$1" = "1" ]; then
	echo "traceless-server is installed, not started. Edit /etc/traceless/traceless-server.env, then: systemctl enable --now traceless-server"
fi

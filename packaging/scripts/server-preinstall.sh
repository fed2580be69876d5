#!/bin/sh
# traceless-server: the system user the service runs as. It is kept on
# removal and purge (files it owned may remain elsewhere, and a reused ID
# would inherit them).
set -e
if ! getent group traceless >/dev/null; then
	groupadd --system traceless
fi
if ! getent passwd traceless >/dev/null; then
	useradd --system --gid traceless --home-dir /var/lib/traceless --no-create-home \
		--shell /usr/sbin/nologin --comment "Traceless control plane" traceless
fi

"""Installer tools: provision a tracker, self-test it, bundle the agent and flash it.

``vgr edge provision`` talks to the cloud's provisioning API over HTTP (stdlib
``urllib``: this package never imports ``cloud``), verifies what it received
and writes the agent's config and trust files. ``vgr edge selftest`` checks a
configured tracker end to end. ``vgr edge bundle`` packs the agent, its
config and a systemd unit into one tarball; ``vgr edge flash`` writes it into
a tracker's root filesystem and verifies every byte against the manifest.
"""

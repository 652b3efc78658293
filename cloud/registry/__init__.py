"""The device registry: tenants, installer keys, devices, their bindings and credentials.

``store`` (PostgreSQL), ``issue`` (passwords, terminal tokens, signed policies),
``broker_auth`` (Mosquitto password and ACL files), ``api`` (the provisioning
HTTP API), ``service`` (running it from a config file), ``cli`` (commands).
"""

"""The device registry: tenants, installer keys, devices, their bindings and credentials.

``ids`` (IMEI/VIN checks), ``model`` (records, errors), ``store`` (PostgreSQL),
``issue`` (passwords, terminal tokens, signed policies), ``broker_auth``
(Mosquitto password and ACL files), ``schema`` and ``api`` (the provisioning
HTTP API), ``service`` (running it from a config file), ``cli`` (commands).
"""

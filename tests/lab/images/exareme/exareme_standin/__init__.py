"""Lab stand-in for the exareme 24.5.1 container (hbpmip/exareme): start-up, keystore keys and HTTP API, no analyses."""

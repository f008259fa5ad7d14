# Pluggable B-route radio modules: the module contract, a registry, the B-route pump.

# ECHONET Lite for the B-route: sans-IO codec, node profile, smart-meter object, service.

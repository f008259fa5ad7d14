# B-route: the ECHONET Lite stack and the pluggable radio modules.

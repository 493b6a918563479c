# Asterisk 22 from Debian's own package (sid has 22.x; Debian 12 has none).
# The same package and the same rendered asterisk-config/ as the tested lab.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules sox \
 && rm -rf /var/lib/apt/lists/*
# Rendered by `hotline config render --platform <p> --node-dir /srv/hotline/<node> --out deploy/<node>`.
ARG NODE=node12345
ENV NODE=${NODE}
RUN mkdir -p /srv/hotline/${NODE}/run /srv/hotline/${NODE}/spool /srv/hotline/${NODE}/log \
             /srv/hotline/${NODE}/lib/keys /srv/hotline/${NODE}/cache /srv/hotline/${NODE}/moh \
 && sox -n -r 8000 -c 1 -b 16 /srv/hotline/${NODE}/moh/hold.wav synth 4 sine 440 vol 0.05
CMD ["sh", "-c", "exec /usr/sbin/asterisk -C /srv/hotline/${NODE}/etc/asterisk.conf -f -n -q"]

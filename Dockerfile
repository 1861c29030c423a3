# Hub bridge container image. Not built or tested on the project's machines (no Docker
# there); it is kept deliberately plain so it is easy to check by reading.
#
#   docker build -t hub-bridge .
#   docker run -v /srv/hub-bridge:/data -p 127.0.0.1:29400:29400 hub-bridge
#
# /data holds config.yaml, registration.yaml and (with SQLite) the database. Set
# appservice.hostname to 0.0.0.0 in config.yaml so the homeserver can reach the
# container, and a relative sqlite path (sqlite:hub-bridge.db) lands in /data.
FROM python:3.12-slim

# python-olm has wheels for Python 3.11 and 3.12 only; nothing needs compiling.
# EXTRAS picks the network libraries: all (Telegram and WhatsApp), telegram, whatsapp,
# or "" for none. Signal needs no library here: the signal-cli daemon runs beside the
# bridge (docs/signal.md), in its own container or on the host.
ARG EXTRAS=all
WORKDIR /opt/hub-bridge
COPY pyproject.toml setup.py MANIFEST.in README.md config.example.yaml ./
COPY bridge ./bridge
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" && rm -rf /opt/hub-bridge/build

# A fixed unprivileged user; give it the /data volume (chown 10100 on the host).
RUN useradd --system --uid 10100 --home-dir /data --shell /usr/sbin/nologin hubbridge
USER hubbridge
WORKDIR /data
VOLUME /data

# The appservice port; metrics (9100) and provisioning (29401) only when enabled.
EXPOSE 29400
CMD ["hub-bridge", "-c", "/data/config.yaml"]

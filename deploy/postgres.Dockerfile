# PostgreSQL 15 from Debian's packages, for deploy/compose.yaml (an image built here, not
# pulled). DEBIAN_IMAGE: any Debian bookworm image with apt (the tests use their own).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG POSTGRES_PASSWORD=presence
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
USER postgres
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH
# A cluster with the "presence" database; password auth from the compose network.
RUN printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pw \
 && initdb --auth-local=trust --auth-host=scram-sha-256 --username=postgres --pwfile=/tmp/pw \
 && rm /tmp/pw \
 && echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf" \
 && echo 'host all all 0.0.0.0/0 scram-sha-256' >> "$PGDATA/pg_hba.conf" \
 && pg_ctl -w start -o '-c listen_addresses=' && createdb presence && pg_ctl -w stop
EXPOSE 5432
HEALTHCHECK --interval=2s --timeout=3s --retries=30 CMD ["pg_isready", "-h", "127.0.0.1", "-U", "postgres"]
CMD ["postgres"]

# nats-server from Debian's packages, for deploy/compose.yaml (an image built here, not
# pulled). DEBIAN_IMAGE: any Debian bookworm image with apt (the tests use their own).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server \
 && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 4222
CMD ["nats-server", "-a", "0.0.0.0", "-p", "4222"]

# dig from Debian's packages, for deploy/compose.yaml's `dig` client (an image built
# here, not pulled). DEBIAN_IMAGE: any Debian bookworm image with apt.
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends bind9-dnsutils \
 && rm -rf /var/lib/apt/lists/*
USER nobody
ENTRYPOINT ["dig"]
CMD ["@node-b", "q-s0.web.default.cf.bosh"]

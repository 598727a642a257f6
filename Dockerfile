# presence-dns container image: the compiled daemon (dist/) and its production
# dependencies on a Node 24 base, run as the unprivileged "node" user.
#   docker build -t presence-dns .
# Behind a TLS-intercepting proxy, hand npm the CA certificates it must trust (PEM) as
# npm-ca.pem in the build context (git-ignored; added to Node's own CAs, as
# NODE_EXTRA_CA_CERTS, in the build and deps stages; the runtime image never holds it):
#   cp "$NODE_EXTRA_CA_CERTS" npm-ca.pem      # or: cp "$(npm config get cafile)" npm-ca.pem
#   docker build --network host -t presence-dns .
# (A file rather than a build argument: a system bundle is ~200 KB, over the 128 KB a
# single command-line argument may be.)
#
# Roles (config/container.yaml; docs/operating.md "Running it as a sidecar"):
#   DNS sidecar (the default): serves a topology file it never writes; no database.
#     docker run -d -p 53:53/udp -p 53:53/tcp --read-only --cap-drop ALL --cap-add NET_BIND_SERVICE \
#       -v /srv/presence-dns:/var/lib/presence-dns:ro presence-dns      # /srv/presence-dns/topology.json
#   Node of the presence pipeline: give it a database; registrar, reaper and syncer start.
#     docker run ... -e PRESENCE_DNS_DATABASE_URL=postgres://… -v presence-data:/var/lib/presence-dns presence-dns
#   (PRESENCE_DNS_DATABASE_EMBEDDED=true does the same on the embedded PGlite, in the data volume.)
# Any key can be set with PRESENCE_DNS_<SECTION>_<KEY>. The admin API stays on the
# container's loopback (the HEALTHCHECK runs inside it); to scrape /metrics from outside
# set PRESENCE_DNS_ADMIN_ADDRESS=0.0.0.0 and PRESENCE_DNS_ADMIN_TOKEN.

# --- build: compile src/ to dist/ (TypeScript is a dev dependency, so only here) ---
FROM node:24-slim AS build
WORKDIR /app
# npm-ca.pe[m]: the optional CA file; a pattern, so that its absence is no error.
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json npm-ca.pe[m] ./
RUN if [ -f npm-ca.pem ]; then export NODE_EXTRA_CA_CERTS="$PWD/npm-ca.pem"; fi \
 && npm ci --no-audit --no-fund --ignore-scripts
COPY src ./src
RUN npm run build

# --- deps: production dependencies only (none of them needs an install script) ---
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc npm-ca.pe[m] ./
RUN if [ -f npm-ca.pem ]; then export NODE_EXTRA_CA_CERTS="$PWD/npm-ca.pem"; fi \
 && npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# --- runtime: the small image that runs ---
FROM node:24-slim AS runtime
ENV NODE_ENV=production
# Port 53 as a non-root user: give the node binary CAP_NET_BIND_SERVICE as a file
# capability (allowed by Docker's default set and by --cap-add NET_BIND_SERVICE), then
# drop the tool again. readlink: a Node installed from npm is reached through a symlink.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")" \
 && apt-get purge -y libcap2-bin \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config ./config
COPY config/container.yaml /etc/presence-dns/presence-dns.yaml
RUN mkdir -p /var/lib/presence-dns /etc/presence-dns/aliases.d /etc/presence-dns/instances.d \
 && chown -R 1000:1000 /var/lib/presence-dns
# The image's unprivileged "node" user, by number so runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 53/udp 53/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8053/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# A small young generation: about 10 MB less resident, queries/s within noise (docs/performance.md).
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/bin/presence-dns.js"]
CMD ["start", "--config", "/etc/presence-dns/presence-dns.yaml"]

# presence-dns container image.
#   docker build -t presence-dns .
#   docker run -d --name presence-dns -p 53:53/udp -p 53:53/tcp \
#     -v /srv/topology.json:/var/lib/presence-dns/topology.json presence-dns
# Config: /etc/presence-dns/presence-dns.yaml (config/container.yaml; mount your own over
# it) and PRESENCE_DNS_* environment variables, e.g. PRESENCE_DNS_DATABASE_URL.
# The admin API stays on the container's loopback (the HEALTHCHECK runs inside it); to
# scrape /metrics from outside set PRESENCE_DNS_ADMIN_ADDRESS=0.0.0.0 and a token.

# --- deps: production dependencies only (tsx runs the TypeScript sources at runtime) ---
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# --- runtime: the small image that runs ---
FROM node:24-slim AS runtime
ENV NODE_ENV=production
# Port 53 as a non-root user: give the node binary CAP_NET_BIND_SERVICE as a file
# capability (Docker's default capability set allows it), then drop the tool again.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep "$(command -v node)" \
 && apt-get purge -y libcap2-bin \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY config/container.yaml /etc/presence-dns/presence-dns.yaml
RUN mkdir -p /var/lib/presence-dns /etc/presence-dns/aliases.d /etc/presence-dns/instances.d \
 && chown -R node:node /var/lib/presence-dns
# The image's unprivileged "node" user, by number so runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 53/udp 53/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8053/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/presence-dns.js"]
CMD ["start", "--config", "/etc/presence-dns/presence-dns.yaml"]

# syntax=docker/dockerfile:1
# Switchboard: a kube-proxy compatible service proxy. Built in two stages so the runtime image
# carries the compiled JavaScript and production dependencies only (no TypeScript, no test tools).

# ---- build: compile TypeScript, then drop the dev dependencies -------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app

# Dependencies first: this layer is reused until package.json or the lock file changes.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ---------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime

# The kernel tools Switchboard drives: iptables-restore/-save (iptables), ipset, ipvsadm,
# conntrack (stale UDP/SCTP flow cleanup), ip (the kube-ipvs0 dummy interface in ipvs mode) and
# sysctl (procps: net.ipv4.conf.all.route_localnet for localhost NodePorts); the slim base has none.
# Debian's iptables ships both backends (iptables-nft, the default alternative, and
# iptables-legacy); which one is right is the node's choice (whatever kubelet and the CNI use),
# so it has to be detected at run time, as kube-proxy's iptables-wrapper does.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      iptables \
      ipset \
      ipvsadm \
      conntrack \
      iproute2 \
      procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist

# No USER switch: programming netfilter, IPVS and conntrack and writing net.* sysctls needs root
# (CAP_NET_ADMIN and friends) in the host's network namespace; the DaemonSet runs it privileged.
ENTRYPOINT ["node", "/app/dist/src/cli.js"]
CMD ["run", "--config", "/etc/switchboard/config.yaml"]

# Sluice in a container: docker build -t sluice . && docker run -v $PWD/config.yaml:/etc/sluice/config.yaml sluice
# The config must listen on 0.0.0.0 (listeners and admin) to be reachable from outside the
# container; /readyz and /healthz need no token even when admin.token_env is set.
FROM node:24-slim

WORKDIR /opt/sluice
# Dependencies first, so a source change does not re-run npm ci. The `node` package (the
# pinned Node that bin/sluice prefers) is a dependency; the image's own Node 24 would do too.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY scripts/wait-ready.ts ./scripts/wait-ready.ts

# The image's unprivileged `node` user (uid 1000); /var/lib/sluice holds state_file.
RUN mkdir -p /etc/sluice /var/lib/sluice && chown node:node /var/lib/sluice
USER node

EXPOSE 9090
# SIGTERM drains (readyz 503, listeners close, open connections get shutdown.drain_timeout):
# give `docker stop -t` more than shutdown.delay + drain_timeout (30 s by default).
STOPSIGNAL SIGTERM
# The slim image has no curl: Node's fetch asks /readyz on the default admin port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SLUICE_ADMIN_PORT ?? '9090') + '/readyz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
# bin/sluice sets the memory settings that must precede the process (MALLOC_ARENA_MAX=2,
# NODE_OPTIONS=--max-semi-space-size=1; docs/data-plane-decisions.md, "Process memory at idle");
# `docker run -e MALLOC_ARENA_MAX=… -e NODE_OPTIONS=--max-semi-space-size=…` overrides them.
# Its compile cache (NODE_COMPILE_CACHE) goes to /home/node/.cache/sluice: a new container's
# first start strips the TypeScript (~16 MiB more RSS until it restarts); later ones do not.
ENTRYPOINT ["/opt/sluice/bin/sluice"]
CMD ["run", "--config", "/etc/sluice/config.yaml"]
